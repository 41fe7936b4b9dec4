-- customer_event_daily: how many timeline events of each type a customer had per day (contract
-- schemas/marts/customer_event_daily.yaml). Segment event conditions count over this shape.

with

timeline as (
    select * from {{ ref('fct_customer_events') }}
),

final as (
    select
        customer_id,
        event_type,
        event_date,
        cast(count(*) as int) as event_count
    from timeline
    where event_date <= {{ tag_as_of_date() }}
    group by customer_id, event_type, event_date
)

select * from final
