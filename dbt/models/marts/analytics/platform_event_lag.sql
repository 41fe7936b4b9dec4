-- Event ingest lag: per day the ingest wrote events to bronze and event type, how many events landed and how
-- long after they happened (occurred_at to ingested_at; an event stamped later than its ingest, a producer's
-- clock ahead, counts as 0). The events still waiting on the broker are `mo status`'s figure
-- (platform_metrics.events_waiting). Contract: schemas/serving/analytics.yaml platform_event_lag.

with

events as (
    select * from {{ ref('stg_events__events') }}
),

lagged as (
    select
        cast(ingested_at as date) as ingested_date,
        event_type,
        greatest(
            cast(unix_timestamp(ingested_at) - unix_timestamp(occurred_at) as double),
            0.0
        ) as lag_seconds
    from events
),

final as (
    select
        ingested_date,
        event_type,
        count(*) as events,
        cast(avg(lag_seconds) as double) as avg_lag_seconds,
        cast(percentile_approx(lag_seconds, 0.95) as double) as p95_lag_seconds,
        cast(max(lag_seconds) as double) as max_lag_seconds
    from lagged
    group by ingested_date, event_type
)

select * from final
