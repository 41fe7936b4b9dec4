-- customer_profile: one row per live customer with every built-in tag (contract
-- schemas/marts/customer_profile.yaml) and the registry's custom tags in custom_tags.

with

builtin_tags as (
    select * from {{ ref('int_customer_builtin_tags') }}
),

custom_tag_values as (
    select * from {{ ref('int_customer_custom_tags') }}
),

custom_tag_maps as (
    select
        customer_id,
        map_from_entries(collect_list(struct(tag_name, tag_value))) as custom_tags
    from custom_tag_values
    group by customer_id
),

final as (
    select
        builtin_tags.*,
        coalesce(custom_tag_maps.custom_tags, cast(map() as map<string, string>)) as custom_tags,  -- noqa: LT01
        current_timestamp() as refreshed_at
    from builtin_tags
    left join custom_tag_maps on builtin_tags.customer_id = custom_tag_maps.customer_id
)

select * from final
