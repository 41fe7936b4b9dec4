-- Behaviour tags from the customer timeline: when the customer last did something themselves, on how
-- many of the last 30 days, and through which channel they come most (90 days). Business events
-- (policies, claims, consents...) are not the customer's own activity and are left out.

{% set as_of = tag_as_of_date() %}

with

customers as (
    select * from {{ ref('stg_silver__customers') }}
),

timeline as (
    select * from {{ ref('fct_customer_events') }}
),

policy_tags as (
    select * from {{ ref('int_customer_policy_tags') }}
),

activity as (
    select
        customer_id,
        event_at,
        event_date,
        case
            when channel in ('app', 'app_push') then 'app'
            when channel in ('wechat', 'sms') then channel
            when domain in ('app', 'wechat') then domain
        end as contact_channel
    from timeline
    where
        domain in ('app', 'wechat', 'form', 'coupon', 'message')
        and event_date <= {{ as_of }}
),

activity_summary as (
    select
        customer_id,
        max(event_at) as last_active_at,
        count(distinct case when event_date >= date_sub({{ as_of }}, 29) then event_date end) as active_days_30d
    from activity
    group by customer_id
),

channel_counts as (
    select
        customer_id,
        contact_channel,
        count(*) as events,
        max(event_at) as last_event_at
    from activity
    where
        contact_channel is not null
        and event_date >= date_sub({{ as_of }}, 89)
    group by customer_id, contact_channel
),

preferred as (
    select
        customer_id,
        contact_channel as preferred_channel,
        row_number() over (
            partition by customer_id
            order by events desc, last_event_at desc, contact_channel asc
        ) as channel_rank
    from channel_counts
),

final as (
    select
        customers.id as customer_id,
        activity_summary.last_active_at,
        cast(coalesce(activity_summary.active_days_30d, 0) as int) as active_days_30d,
        coalesce(
            preferred.preferred_channel,
            case when policy_tags.has_agent_policy then 'agent' end
        ) as preferred_channel
    from customers
    left join activity_summary on customers.id = activity_summary.customer_id
    left join preferred
        on
            customers.id = preferred.customer_id
            and preferred.channel_rank = 1
    left join policy_tags on customers.id = policy_tags.customer_id
)

select * from final
