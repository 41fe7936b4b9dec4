-- One membership run per segment and as-of date: the one computed last. A day can have several runs (the
-- daily job, a manual re-run under another run id); the last one is the day's answer, as in members_at().

with

runs as (
    select * from {{ ref('stg_segments__runs') }}
),

definitions as (
    select * from {{ ref('stg_segments__definitions') }}
),

ranked as (
    select
        segment_id,
        as_of_date,
        run_id,
        segment_version,
        segment_kind,
        member_count,
        computed_at,
        row_number() over (
            partition by segment_id, as_of_date
            order by computed_at desc, run_id desc
        ) as run_rank
    from runs
),

latest_per_date as (
    select * from ranked
    where run_rank = 1
),

final as (
    select
        latest_per_date.segment_id,
        latest_per_date.as_of_date,
        latest_per_date.run_id,
        latest_per_date.segment_version,
        latest_per_date.segment_kind,
        definitions.segment_name,
        latest_per_date.member_count as customers,
        latest_per_date.computed_at,
        latest_per_date.as_of_date = max(latest_per_date.as_of_date) over (
            partition by latest_per_date.segment_id
        ) as is_latest_for_segment,
        latest_per_date.as_of_date = max(latest_per_date.as_of_date) over () as is_latest_as_of_date
    from latest_per_date
    left join definitions
        on
            latest_per_date.segment_id = definitions.segment_id
            and latest_per_date.segment_version = definitions.segment_version
)

select * from final
