-- Silver campaigns as dbt reads them: the columns of schemas/sources/campaigns/campaigns.yaml.

with

source as (
    select * from {{ source('campaigns', 'campaigns') }}
),

final as (
    select
        id as campaign_id,
        campaign_code,
        name as campaign_name,
        objective,
        product_line,
        purpose,
        offer_type,
        priority,
        holdout_share,
        ends_at,
        status,
        created_at
    from source
)

select * from final
