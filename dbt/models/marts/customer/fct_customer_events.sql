-- The unified customer timeline (contract: schemas/marts/fct_customer_events.yaml): silver-derived and
-- stream events in one shape, up to the end of the as-of date, for known customers only (a stream event
-- for a customer id the core systems do not hold has no one to belong to).

with

silver_events as (
    select * from {{ ref('int_customer_events_from_silver') }}
),

stream_events as (
    select * from {{ ref('int_customer_events_from_stream') }}
),

customers as (
    select * from {{ ref('stg_silver__customers') }}
),

unioned as (
    select * from silver_events
    union all
    select * from stream_events
),

final as (
    select
        cast(unioned.event_id as string) as event_id,
        cast(customers.id as bigint) as customer_id,
        cast(unioned.event_at as timestamp) as event_at,
        cast(unioned.event_at as date) as event_date,
        cast(unioned.domain as string) as domain,
        cast(unioned.event_type as string) as event_type,
        cast(unioned.channel as string) as channel,
        cast(unioned.object_id as string) as object_id,
        cast(unioned.amount as double) as amount,
        cast(unioned.attributes as string) as attributes,
        cast(unioned.source as string) as source
    from unioned
    inner join customers
        on unioned.customer_id = customers.id
    where cast(unioned.event_at as date) <= {{ as_of_date() }}
)

select * from final
