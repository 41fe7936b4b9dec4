-- The Segments dashboard's distributions: members of each segment's latest run by gender, age band, province,
-- acquisition and preferred channel, content preference and tier (seg_segment_distribution, long form), with
-- the province's map code for the China map.

with

distribution as (
    select * from {{ ref('seg_segment_distribution') }}
),

names as (
    select * from {{ ref('int_segment_display_names') }}
),

final as (
    select
        distribution.as_of_date,
        distribution.segment_id,
        names.segment_name,
        distribution.dimension,
        distribution.value,
        case
            when distribution.dimension = 'province' then {{ china_province_iso_code('distribution.value') }}
        end as province_iso_code,
        distribution.customers,
        distribution.segment_customers,
        distribution.share
    from distribution
    inner join names
        on distribution.segment_id = names.segment_id
)

select * from final
