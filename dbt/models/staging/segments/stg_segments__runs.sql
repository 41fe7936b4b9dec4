-- One row per (membership run, segment) with the member count; segments that matched nobody are here too.

with

source as (
    select * from {{ source('segments', 'runs') }}
),

final as (
    select
        run_id,
        as_of_date,
        segment_id,
        segment_version,
        kind as segment_kind,
        member_count,
        computed_at
    from source
)

select * from final
