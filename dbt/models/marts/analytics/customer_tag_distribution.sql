-- Live customers per value of every categorical tag of the registry (an enumerated value list, or yes/no;
-- var tag_distribution, passed by mo.marts.dbt.build_vars from schemas/tags/registry.yaml): built-in tags
-- from their customer_profile column, custom tags from custom_tags. A customer without a value counts under
-- 'none' (contract: schemas/serving/analytics.yaml customer_tag_distribution).

{% set tags = var('tag_distribution', []) %}

with

profiles as (
    select * from {{ ref('customer_profile') }}
),

tag_values as (
    select
        cast(null as string) as tag_name,
        cast(null as string) as tag_group,
        cast(null as string) as tag_value
    from profiles
    where false
    {%- for tag in tags %}
    {%- if tag.type == 'custom' %}
        {%- set value = "element_at(custom_tags, '" ~ tag.name ~ "')" %}
    {%- else %}
        {%- set value = "cast(" ~ adapter.quote(tag.name) ~ " as string)" %}
    {%- endif %}
    union all
    select
        '{{ tag.name }}' as tag_name,
        '{{ tag.group }}' as tag_group,
        {{ value }} as tag_value
    from profiles
    {%- endfor %}
),

final as (
    select
        tag_name,
        tag_group,
        coalesce(tag_value, 'none') as tag_value,
        count(*) as customers
    from tag_values
    group by tag_name, tag_group, coalesce(tag_value, 'none')
)

select * from final
