-- Who is in each segment now: members of the segment's latest run counted by gender, age band,
-- acquisition channel, province, content preference, preferred channel and customer tier, in long form
-- (one row per segment, dimension and value) so a dashboard filters on `dimension` instead of a column per
-- attribute.
--
-- Latest run only: customer_profile holds today's attributes, not their history, so older runs would be
-- described with attributes they did not have. A member without a profile row (a customer deleted since the
-- run) or without a value (no preferred channel yet) counts under 'unknown'; shares add up to 1 per
-- segment and dimension.

with

runs as (
    select * from {{ ref('int_segment_runs_deduplicated') }}
),

membership as (
    select * from {{ ref('stg_segments__membership') }}
),

profiles as (
    select * from {{ ref('customer_profile') }}
),

members as (
    select
        runs.segment_id,
        runs.as_of_date,
        runs.run_id,
        runs.customers as segment_customers,
        membership.customer_id
    from runs
    inner join membership
        on
            runs.run_id = membership.run_id
            and runs.as_of_date = membership.as_of_date
            and runs.segment_id = membership.segment_id
    where runs.is_latest_for_segment
),

described as (
    select
        members.segment_id,
        members.as_of_date,
        members.run_id,
        members.segment_customers,
        members.customer_id,
        profiles.gender,
        profiles.age_band,
        profiles.acquisition_channel,
        profiles.province,
        profiles.content_preference,
        profiles.preferred_channel,
        profiles.customer_tier
    from members
    left join profiles
        on members.customer_id = profiles.customer_id
),

unpivoted as (
    select
        segment_id,
        as_of_date,
        run_id,
        segment_customers,
        customer_id,
        stack(
            7,
            'gender', gender,
            'age_band', age_band,
            'acquisition_channel', acquisition_channel,
            'province', province,
            'content_preference', content_preference,
            'preferred_channel', preferred_channel,
            'customer_tier', customer_tier
        ) as (dimension, dimension_value)
    from described
),

counted as (
    select
        segment_id,
        as_of_date,
        run_id,
        segment_customers,
        dimension,
        coalesce(dimension_value, 'unknown') as dimension_value,
        count(distinct customer_id) as customers
    from unpivoted
    group by segment_id, as_of_date, run_id, segment_customers, dimension, coalesce(dimension_value, 'unknown')
),

final as (
    select
        segment_id,
        as_of_date,
        run_id,
        dimension,
        dimension_value as value,
        cast(customers as bigint) as customers,
        cast(segment_customers as bigint) as segment_customers,
        cast(customers / segment_customers as double) as share  -- noqa: RF04
    from counted
)

select * from final
