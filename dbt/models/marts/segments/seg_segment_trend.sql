-- Segment size over time, by week (Monday to Sunday) and by month: the size of the last run in each period
-- and the change from the period before. "The period before" is the calendar period, not the previous row:
-- when no run fell in it, the previous size and the change are null instead of silently spanning a gap.
-- Sizes come from the runs table (one row per run and segment), so the trend never scans the membership.

with

runs as (
    select * from {{ ref('int_segment_runs_deduplicated') }}
),

grains as (
    select 'week' as grain
    union all
    select 'month' as grain
),

periodised as (
    select
        runs.segment_id,
        grains.grain,
        case grains.grain
            when 'week' then trunc(runs.as_of_date, 'week')
            else trunc(runs.as_of_date, 'month')
        end as period_start_date,
        runs.as_of_date,
        runs.run_id,
        runs.computed_at,
        runs.customers
    from runs
    cross join grains
),

ranked as (
    select
        segment_id,
        grain,
        period_start_date,
        as_of_date,
        run_id,
        customers,
        row_number() over (
            partition by segment_id, grain, period_start_date
            order by as_of_date desc, computed_at desc, run_id desc
        ) as run_rank
    from periodised
),

last_in_period as (
    select
        segment_id,
        grain,
        period_start_date,
        case grain
            when 'week' then date_add(period_start_date, 6)
            else last_day(period_start_date)
        end as period_end_date,
        case grain
            when 'week' then date_sub(period_start_date, 7)
            else add_months(period_start_date, -1)
        end as previous_period_start_date,
        as_of_date,
        run_id,
        customers
    from ranked
    where run_rank = 1
),

final as (
    select
        current_period.segment_id,
        current_period.grain,
        current_period.period_start_date,
        current_period.period_end_date,
        current_period.as_of_date,
        current_period.run_id,
        cast(current_period.customers as bigint) as customers,
        cast(previous_period.customers as bigint) as previous_customers,
        cast(current_period.customers - previous_period.customers as bigint) as customers_change,
        cast(
            (current_period.customers - previous_period.customers) / nullif(previous_period.customers, 0)
            as double
        ) as customers_change_ratio
    from last_in_period as current_period
    left join last_in_period as previous_period
        on
            current_period.segment_id = previous_period.segment_id
            and current_period.grain = previous_period.grain
            and current_period.previous_period_start_date = previous_period.period_start_date
)

select * from final
