"""Benchmarks (`make bench`); each bench_*.py module measures one job against a baseline in the same run."""
