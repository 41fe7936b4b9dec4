-- The Segments dashboard's sizes over time: one row per segment and as-of date (the day's last run), read from
-- the segment insight mart seg_segment_size. Company-wide: segments are not kept per organisation.

with

sizes as (
    select * from {{ ref('seg_segment_size') }}
),

final as (
    select
        as_of_date,
        segment_id,
        coalesce(segment_name, segment_id) as segment_name,
        segment_kind,
        segment_version,
        customers,
        policies,
        insured_subjects,
        cast(premium_total as double) as premium_total,
        is_latest_for_segment
    from sizes
)

select * from final
