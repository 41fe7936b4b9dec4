-- Live customers per province, lines held (their in-force policies' product lines on the as-of date,
-- sorted and comma-separated; 'none') and tier, from customer_profile (contract:
-- schemas/serving/analytics.yaml customer_lines).

with

profiles as (
    select * from {{ ref('customer_profile') }}
),

final as (
    select
        province,
        coalesce(nullif(lines_held, ''), 'none') as lines_held,
        customer_tier,
        count(*) as customers
    from profiles
    group by province, coalesce(nullif(lines_held, ''), 'none'), customer_tier
)

select * from final
