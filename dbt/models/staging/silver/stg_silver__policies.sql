-- Silver policies as dbt reads them: same column names as schemas/sources/policies.yaml, PII as tokens and masks.

with

source as (
    select * from {{ source('silver', 'policies') }}
),

final as (
    select
        id,
        policy_no,
        customer_id,
        product_id,
        agent_id,
        org_id,
        subject_type,
        vehicle_plate_token,
        vehicle_plate_masked,
        vehicle_model,
        vehicle_value,
        vehicle_first_registered,
        property_address_masked,
        sum_insured,
        premium,
        payment_mode,
        start_date,
        end_date,
        status,
        renewal_of,
        issued_at,
        created_at,
        updated_at,
        deleted_at
    from source
)

select * from final
