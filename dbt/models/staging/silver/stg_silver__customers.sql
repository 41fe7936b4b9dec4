-- Silver customers as dbt reads them: same column names as schemas/sources/customers.yaml, PII as tokens and masks.

with

source as (
    select * from {{ source('silver', 'customers') }}
),

final as (
    select
        id,
        name_masked,
        id_number_token,
        id_number_masked,
        phone_token,
        phone_masked,
        gender,
        birth_date,
        province,
        city,
        acquisition_channel,
        wechat_openid_token,
        app_user_id_token,
        risk_rating,
        created_at,
        updated_at,
        deleted_at
    from source
)

select * from final
