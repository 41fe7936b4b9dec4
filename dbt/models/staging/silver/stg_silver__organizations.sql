-- Silver organizations as dbt reads them: column names as in schemas/sources/organizations.yaml.

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
