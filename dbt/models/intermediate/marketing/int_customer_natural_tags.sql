-- Natural tags: who the customer is (age on the as-of date, age band, gender, where they live).

with

customers as (
    select * from {{ ref('stg_silver__customers') }}
),

aged as (
    select
        id as customer_id,
        name_masked,
        phone_masked,
        phone_token,
        id_number_token,
        cast(created_at as date) as customer_since_date,
        gender,
        cast({{ tag_whole_years('birth_date', tag_as_of_date()) }} as int) as age,
        province,
        city,
        acquisition_channel,
        risk_rating
    from customers
),

final as (
    select
        customer_id,
        name_masked,
        phone_masked,
        phone_token,
        id_number_token,
        customer_since_date,
        gender,
        age,
        case
            when age < 25 then '<25'
            when age < 35 then '25-34'
            when age < 45 then '35-44'
            when age < 55 then '45-54'
            when age < 65 then '55-64'
            else '65+'
        end as age_band,
        province,
        city,
        {{ tag_city_tier('city') }} as city_tier,
        acquisition_channel,
        risk_rating
    from aged
)

select * from final
