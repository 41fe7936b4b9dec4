-- The customer timeline's volume: events per day, domain and event type over the last
-- `analytics_timeline_days` (365) days up to the as-of date, with the customers they belong to
-- (fct_customer_events; contract: schemas/serving/analytics.yaml customer_event_volume).

with

events as (
    select * from {{ ref('fct_customer_events') }}
),

final as (
    select
        event_date,
        domain,
        event_type,
        count(*) as events,
        count(distinct customer_id) as customers
    from events
    where event_date > date_sub({{ as_of_date() }}, {{ var('analytics_timeline_days') }})
    group by event_date, domain, event_type
)

select * from final
