-- Each segment's display name as the Segments dashboard shows it: the name of the definition version its latest
-- run used, or the segment id when that version has none. One row per segment; segment_overlap and
-- segment_distribution join it.

with

sizes as (
    select * from {{ ref('seg_segment_size') }}
),

final as (
    select
        segment_id,
        coalesce(segment_name, segment_id) as segment_name
    from sizes
    where is_latest_for_segment
)

select * from final
