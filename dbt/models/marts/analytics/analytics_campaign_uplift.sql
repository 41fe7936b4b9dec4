-- The Campaign operations dashboard's uplift over the holdout: mart_campaign_uplift as published for Superset (per
-- campaign and per product line: the groups, their conversion rates, the difference and its 95% Newcombe
-- interval). The interval is not additive: a chart shows the rows as they are, one per line or campaign.

with

uplift as (
    select * from {{ ref('mart_campaign_uplift') }}
),

final as (
    select * from uplift
)

select * from final
