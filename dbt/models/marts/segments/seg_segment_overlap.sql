-- How segments overlap on the latest as-of date: for every ordered pair of segments evaluated that day (the
-- day's last run of each), the customers in both, the Jaccard index, and the share of the first segment's
-- customers who are also in the second. Both orders are kept because the share is directional ("62% of
-- renewal-due customers are also app-active" is not the converse); pairs with no common customer are kept
-- with 0, so a dashboard matrix has every cell.

with

runs as (
    select * from {{ ref('int_segment_runs_deduplicated') }}
),

membership as (
    select * from {{ ref('stg_segments__membership') }}
),

latest_runs as (
    select
        segment_id,
        as_of_date,
        run_id,
        customers
    from runs
    where is_latest_as_of_date
),

members as (
    select
        latest_runs.segment_id,
        membership.customer_id
    from latest_runs
    inner join membership
        on
            latest_runs.run_id = membership.run_id
            and latest_runs.as_of_date = membership.as_of_date
            and latest_runs.segment_id = membership.segment_id
),

shared as (
    select
        segment_members.segment_id,
        other_members.segment_id as other_segment_id,
        count(distinct segment_members.customer_id) as customers_in_both
    from members as segment_members
    inner join members as other_members
        on
            segment_members.customer_id = other_members.customer_id
            and segment_members.segment_id != other_members.segment_id
    group by segment_members.segment_id, other_members.segment_id
),

pairs as (
    select
        segment_runs.as_of_date,
        segment_runs.segment_id,
        other_runs.segment_id as other_segment_id,
        segment_runs.customers as segment_customers,
        other_runs.customers as other_segment_customers
    from latest_runs as segment_runs
    inner join latest_runs as other_runs
        on segment_runs.segment_id != other_runs.segment_id
),

final as (
    select
        pairs.as_of_date,
        pairs.segment_id,
        pairs.other_segment_id,
        cast(pairs.segment_customers as bigint) as segment_customers,
        cast(pairs.other_segment_customers as bigint) as other_segment_customers,
        cast(coalesce(shared.customers_in_both, 0) as bigint) as customers_in_both,
        cast(
            pairs.segment_customers + pairs.other_segment_customers - coalesce(shared.customers_in_both, 0)
            as bigint
        ) as customers_in_either,
        cast(
            coalesce(shared.customers_in_both, 0)
            / nullif(pairs.segment_customers + pairs.other_segment_customers - coalesce(shared.customers_in_both, 0), 0)
            as double
        ) as jaccard,
        cast(coalesce(shared.customers_in_both, 0) / nullif(pairs.segment_customers, 0) as double)
            as share_of_segment_in_other
    from pairs
    left join shared
        on
            pairs.segment_id = shared.segment_id
            and pairs.other_segment_id = shared.other_segment_id
)

select * from final
