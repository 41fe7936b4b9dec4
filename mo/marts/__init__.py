"""Marts: the dbt project runner (dbt/ holds the models)."""
