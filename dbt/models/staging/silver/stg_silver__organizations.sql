-- Silver organizations as dbt reads them: same column names as schemas/sources/organizations.yaml, PII as tokens and masks.

with

source as (
    select * from {{ source('silver', 'organizations') }}
),

final as (
    select
        id,
        org_code,
        name,
        level,
        parent_id,
        province,
        city,
        created_at,
        updated_at,
        deleted_at
    from source
)

select * from final
