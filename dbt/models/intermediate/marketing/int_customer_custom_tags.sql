-- Custom tags of the registry (schemas/tags/registry.yaml, passed as var tag_registry), one row per
-- customer and tag that has a value. Each rule is compiled to a CASE expression over the built-in
-- tags by the macro custom_tags (dbt/macros/tags/custom_tags.sql); a rule naming a column the
-- customer_profile contract does not declare fails the compile, naming the tag and the column.

with

builtin_tags as (
    select * from {{ ref('int_customer_builtin_tags') }}
),

final as (
    {{ custom_tags(var('tag_registry', []), 'builtin_tags') }}
)

select * from final
