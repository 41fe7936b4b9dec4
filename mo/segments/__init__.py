"""Segments: the rule language and its compiler, versioned segment definitions, and per-run membership with
point-in-time read-back and per-member explanations (see schemas/segments/README.md)."""
