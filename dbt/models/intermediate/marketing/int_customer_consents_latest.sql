-- Reachability: the latest marketing consent decision per customer and channel (a later opt-out
-- overrides an earlier opt-in, and the other way round). No decision means no consent.

with

customers as (
    select * from {{ ref('stg_silver__customers') }}
),

consents as (
    select * from {{ ref('stg_silver__consents') }}
),

ranked as (
    select
        customer_id,
        channel,
        status,
        row_number() over (
            partition by customer_id, channel
            order by decided_at desc, updated_at desc, id desc
        ) as decision_rank
    from consents
    where cast(decided_at as date) <= {{ tag_as_of_date() }}
),

latest as (
    select
        customer_id,
        max(case when channel = 'app_push' then status = 'opt_in' end) as consent_app_push,
        max(case when channel = 'sms' then status = 'opt_in' end) as consent_sms,
        max(case when channel = 'wechat' then status = 'opt_in' end) as consent_wechat
    from ranked
    where decision_rank = 1
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
