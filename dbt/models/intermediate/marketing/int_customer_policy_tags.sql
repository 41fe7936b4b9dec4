-- Policy and insured-subject tags: what the customer holds on the as-of date, their premium and
-- tenure, the next renewal, and the vehicle of their latest vehicle policy. Also the lifetime premium
-- the value tags need.

{% set as_of = tag_as_of_date() %}

with

customers as (
    select * from {{ ref('stg_silver__customers') }}
),

policies as (
    select * from {{ ref('stg_silver__policies') }}
),

products as (
    select * from {{ ref('stg_silver__products') }}
),

policy_lines as (
    select
        policies.id as policy_id,
        policies.customer_id,
        policies.agent_id,
        policies.subject_type,
        policies.vehicle_value,
        policies.vehicle_first_registered,
        policies.premium,
        policies.start_date,
        policies.end_date,
        policies.status,
        products.line,
        products.term_months
    from policies
    inner join products on policies.product_id = products.id
),

-- Policies that were ever bound (quotes and unpaid applications never were).
issued as (
    select * from policy_lines
    where
        status in ('in_force', 'lapsed', 'surrendered', 'expired')
        and start_date <= {{ as_of }}
),

in_force as (
    select * from policy_lines
    where
        status = 'in_force'
        and start_date <= {{ as_of }}
        and end_date >= {{ as_of }}
),

holdings as (
    select
        customer_id,
        array_join(array_sort(collect_set(line)), ',') as lines_held,
        max(case when line = 'auto' then 1 else 0 end) = 1 as has_auto,
        max(case when line = 'property' then 1 else 0 end) = 1 as has_property,
        max(case when line = 'accident' then 1 else 0 end) = 1 as has_accident,
        max(case when line = 'health' then 1 else 0 end) = 1 as has_health,
        max(case when line = 'life' then 1 else 0 end) = 1 as has_life,
        count(*) as policy_count,
        sum(premium) as total_premium,
        -- Only short-term covers renew; a whole-life policy's end date is not a renewal.
        min(case when term_months <= 12 then end_date end) as next_renewal_date,
        max(case when agent_id is not null then 1 else 0 end) = 1 as has_agent_policy
    from in_force
    group by customer_id
),

history as (
    select
        customer_id,
        min(start_date) as first_policy_start_date,
        sum(premium) as lifetime_premium
    from issued
    group by customer_id
),

vehicles as (
    select
        customer_id,
        vehicle_value,
        vehicle_first_registered,
        row_number() over (partition by customer_id order by start_date desc, policy_id desc) as vehicle_rank
    from in_force
    where subject_type = 'vehicle'
),

latest_vehicle as (
    select * from vehicles
    where vehicle_rank = 1
),

final as (
    select
        customers.id as customer_id,
        holdings.lines_held,
        coalesce(holdings.has_auto, false) as has_auto,
        coalesce(holdings.has_property, false) as has_property,
        coalesce(holdings.has_accident, false) as has_accident,
        coalesce(holdings.has_health, false) as has_health,
        coalesce(holdings.has_life, false) as has_life,
        cast(coalesce(holdings.policy_count, 0) as int) as policy_count,
        cast(coalesce(holdings.total_premium, 0) as double) as total_premium,
        cast(
            coalesce({{ tag_whole_years('history.first_policy_start_date', as_of) }}, 0) as int
        ) as tenure_years,
        holdings.next_renewal_date,
        cast(datediff(holdings.next_renewal_date, {{ as_of }}) as int) as days_to_renewal,
        cast(
            {{ tag_whole_years('latest_vehicle.vehicle_first_registered', as_of) }} as int
        ) as vehicle_age_years,
        case
            when latest_vehicle.vehicle_value is null then null
            when latest_vehicle.vehicle_value < 100000 then '<100k'
            when latest_vehicle.vehicle_value < 200000 then '100k-200k'
            when latest_vehicle.vehicle_value < 400000 then '200k-400k'
            else '400k+'
        end as vehicle_value_band,
        coalesce(holdings.has_agent_policy, false) as has_agent_policy,
        cast(coalesce(history.lifetime_premium, 0) as double) as lifetime_premium
    from customers
    left join holdings on customers.id = holdings.customer_id
    left join history on customers.id = history.customer_id
    left join latest_vehicle on customers.id = latest_vehicle.customer_id
)

select * from final
