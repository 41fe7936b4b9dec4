-- The Campaign operations dashboard's funnel and trend: mart_campaign_results as published for Superset (per
-- campaign x channel x product line x ISO week and calendar month; audience, suppressed by reason, sent ..
-- converted, the comparison groups). A chart sums one period_type's rows: the weeks (or the months) of a campaign
-- add up to its whole funnel.
--
-- Not keyed by organisation: a customer has no organisation in the core systems (only a policy and an agent do),
-- and campaigns are run by head-office marketing (docs/dashboards.md).

with

results as (
    select * from {{ ref('mart_campaign_results') }}
),

final as (
    select * from results
)

select * from final
