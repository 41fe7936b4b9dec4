"""Customer tags: the registry (schemas/tags/registry.yaml) that catalogues built-in and custom tags.

dbt computes the tags (dbt/models/intermediate/marketing, dbt/models/marts/marketing/customer_profile);
this package validates the registry and hands the custom rules to dbt as vars.
"""
