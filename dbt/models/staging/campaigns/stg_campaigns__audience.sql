-- Silver campaign_audience as dbt reads it: the frozen members of each occurrence.

with

source as (
    select * from {{ source('campaigns', 'campaign_audience') }}
),

final as (
    select
        campaign_id,
        occurrence,
        customer_id
    from source
)

select * from final
