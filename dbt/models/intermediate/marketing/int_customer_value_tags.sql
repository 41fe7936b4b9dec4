-- Value tags: lifetime value, claims ratio and the customer tier (thresholds in
-- dbt/macros/tags/customer_tier.sql).

with

policy_tags as (
    select * from {{ ref('int_customer_policy_tags') }}
),

service_tags as (
    select * from {{ ref('int_customer_service_tags') }}
),

measured as (
    select
        policy_tags.customer_id,
        policy_tags.total_premium,
        policy_tags.policy_count,
        cast(policy_tags.lifetime_premium - service_tags.paid_claims_amount as double) as lifetime_value,
        cast(
            case
                when policy_tags.lifetime_premium > 0
                    then service_tags.paid_claims_amount / policy_tags.lifetime_premium
                else 0
            end as double
        ) as claims_ratio
    from policy_tags
    inner join service_tags on policy_tags.customer_id = service_tags.customer_id
),

final as (
    select
        customer_id,
        {{ tag_customer_tier('total_premium', 'policy_count', 'claims_ratio') }} as customer_tier,
        lifetime_value,
        claims_ratio
    from measured
)

select * from final
