-- Segment membership per run as the refresh wrote it: one row per (run, segment, member).

with

source as (
    select * from {{ source('segments', 'membership') }}
),

final as (
    select
        run_id,
        as_of_date,
        segment_id,
        segment_version,
        customer_id,
        matched_clauses,
        computed_at
    from source
)

select * from final
