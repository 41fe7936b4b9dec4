-- Silver consents as dbt reads them: same column names as schemas/sources/consents.yaml, PII as tokens and masks.

with

source as (
    select * from {{ source('silver', 'consents') }}
),

final as (
    select
        id,
        customer_id,
        channel,
        status,
        decided_at,
        source,
        created_at,
        updated_at,
        deleted_at
    from source
)

select * from final
