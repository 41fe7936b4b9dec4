-- Silver claims as dbt reads them: same column names as schemas/sources/claims.yaml, PII as tokens and masks.

with

source as (
    select * from {{ source('silver', 'claims') }}
),

final as (
    select
        id,
        claim_no,
        policy_id,
        customer_id,
        incident_at,
        incident_province,
        incident_city,
        incident_type,
        reported_at,
        amount_claimed,
        amount_approved,
        amount_paid,
        status,
        submitted_at,
        under_review_at,
        docs_requested_at,
        approved_at,
        rejected_at,
        paying_at,
        paid_at,
        created_at,
        updated_at,
        deleted_at
    from source
)

select * from final
