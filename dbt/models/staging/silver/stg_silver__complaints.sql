-- Silver complaints as dbt reads them: same column names as schemas/sources/complaints.yaml, PII as tokens and masks.

with

source as (
    select * from {{ source('silver', 'complaints') }}
),

final as (
    select
        id,
        complaint_no,
        customer_id,
        policy_id,
        channel,
        category,
        status,
        opened_at,
        resolved_at,
        created_at,
        updated_at,
        deleted_at
    from source
)

select * from final
