-- One row per live customer. Identity is masked for display and tokenised for joins; clear names, phone
-- numbers and ID numbers never reach the marts (they live only in silver_restricted).

with

customers as (
    select * from {{ ref('stg_silver__customers') }}
),

final as (
    select
        id as customer_id,
        name_masked,
        id_number_masked,
        id_number_token,
        phone_masked,
        phone_token,
        wechat_openid_token,
        app_user_id_token,
        wechat_openid_token is not null as has_wechat,
        app_user_id_token is not null as has_app,
        gender,
        birth_date,
        cast(
            floor(months_between({{ as_of_date() }}, birth_date) / 12) as int
        ) as age,
        province,
        city,
        acquisition_channel,
        risk_rating,
        cast(created_at as date) as customer_since_date,
        created_at,
        updated_at
    from customers
)

select * from final
