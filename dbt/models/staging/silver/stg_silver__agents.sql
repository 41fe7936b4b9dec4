-- Silver agents as dbt reads them: same column names as schemas/sources/agents.yaml, PII as tokens and masks.

with

source as (
    select * from {{ source('silver', 'agents') }}
),

final as (
    select
        id,
        agent_code,
        name_masked,
        phone_token,
        phone_masked,
        org_id,
        license_no,
        status,
        hired_date,
        created_at,
        updated_at,
        deleted_at
    from source
)

select * from final
