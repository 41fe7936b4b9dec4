"""Marketing and analytics middle office: the data platform package behind the `mo` CLI."""
