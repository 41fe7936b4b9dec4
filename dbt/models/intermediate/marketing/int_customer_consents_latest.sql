-- Reachability: the latest marketing consent decision per customer and channel, pivoted for the
-- channels the profile carries. No decision means no consent.

with

customers as (
    select * from {{ ref('stg_silver__customers') }}
),

decisions as (
    select * from {{ ref('int_customer_consent_decisions_latest') }}
),

latest as (
    select
        customer_id,
        max(case when channel = 'app_push' then is_opted_in end) as consent_app_push,
        max(case when channel = 'sms' then is_opted_in end) as consent_sms,
        max(case when channel = 'wechat' then is_opted_in end) as consent_wechat
    from decisions
    group by customer_id
),

final as (
    select
        customers.id as customer_id,
        coalesce(latest.consent_app_push, false) as consent_app_push,
        coalesce(latest.consent_sms, false) as consent_sms,
        coalesce(latest.consent_wechat, false) as consent_wechat
    from customers
    left join latest on customers.id = latest.customer_id
)

select * from final
