-- One row per policy (quotes included) with its product line, the days left on the as-of date, whether it
-- is in force that day, and its renewal links.

with

policies as (
    select * from {{ ref('stg_silver__policies') }}
),

products as (
    select * from {{ ref('stg_silver__products') }}
),

renewal_links as (
    select * from {{ ref('int_policies_renewal_linked') }}
),

final as (
    select
        policies.id as policy_id,
        policies.policy_no,
        policies.customer_id,
        policies.product_id,
        products.product_code,
        products.line as product_line,
        policies.agent_id,
        policies.org_id,
        policies.subject_type,
        policies.vehicle_plate_token,
        policies.vehicle_plate_masked,
        policies.vehicle_model,
        policies.vehicle_value,
        policies.vehicle_first_registered as vehicle_first_registered_date,
        policies.property_address_masked,
        policies.sum_insured,
        policies.premium,
        policies.payment_mode,
        policies.status,
        policies.start_date,
        policies.end_date,
        policies.issued_at,
        policies.created_at,
        policies.updated_at,
        cast(datediff(policies.end_date, {{ as_of_date() }}) as int) as days_to_end,
        (
            policies.status = 'in_force'
            and policies.start_date <= {{ as_of_date() }}
            and policies.end_date >= {{ as_of_date() }}
        ) as is_in_force,
        renewal_links.renewal_of_policy_id,
        renewal_links.renewed_by_policy_id,
        renewal_links.is_renewal,
        renewal_links.is_renewed
    from policies
    inner join products
        on policies.product_id = products.id
    inner join renewal_links
        on policies.id = renewal_links.policy_id
)

select * from final
