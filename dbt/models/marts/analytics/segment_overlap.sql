-- The Segments dashboard's overlap matrix: every ordered pair of segments on the latest as-of date of any run
-- (seg_segment_overlap), with both segments' display names.

with

overlap as (
    select * from {{ ref('seg_segment_overlap') }}
),

names as (
    select * from {{ ref('int_segment_display_names') }}
),

final as (
    select
        overlap.as_of_date,
        overlap.segment_id,
        segment_names.segment_name,
        overlap.other_segment_id,
        other_names.segment_name as other_segment_name,
        overlap.segment_customers,
        overlap.customers_in_both,
        overlap.jaccard,
        overlap.share_of_segment_in_other
    from overlap
    inner join names as segment_names
        on overlap.segment_id = segment_names.segment_id
    inner join names as other_names
        on overlap.other_segment_id = other_names.segment_id
)

select * from final
