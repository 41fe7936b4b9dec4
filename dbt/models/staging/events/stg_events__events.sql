-- Stream events, one row per event_id: bronze keeps every Kafka offset, so a producer's retry of the same
-- event appears twice there; the first ingested copy is the one kept.

with

source as (
    select * from {{ source('bronze', 'events') }}
),

ranked as (
    select
        event_id,
        event_type,
        schema_version,
        occurred_at,
        customer_id,
        source,
        payload,
        topic,
        ingested_at,
        row_number() over (
            partition by event_id
            order by ingested_at, topic, `partition`, `offset`
        ) as copy_number
    from source
),

final as (
    select
        event_id,
        event_type,
        schema_version,
        occurred_at,
        customer_id,
        source,
        payload,
        topic,
        ingested_at
    from ranked
    where copy_number = 1
)

select * from final
