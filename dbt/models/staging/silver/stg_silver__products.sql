-- Silver products as dbt reads them: same column names as schemas/sources/products.yaml, PII as tokens and masks.

with

source as (
    select * from {{ source('silver', 'products') }}
),

final as (
    select
        id,
        product_code,
        name,
        line,
        risk_level,
        requires_dual_recording,
        base_premium,
        term_months,
        qc_sample_ratio,
        status,
        created_at,
        updated_at,
        deleted_at
    from source
)

select * from final
