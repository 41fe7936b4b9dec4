-- Uplift over the holdout per campaign and per product line (all the line's campaigns): treated and holdout
-- touches with their conversions (fct_contact_touches' groups), the rates, their difference and its 95%
-- interval by Newcombe's hybrid score method (from two Wilson intervals: stays in [-1, 1] and behaves for
-- small counts and rates near zero). The same figures as mo/campaigns/results.campaign_funnel's uplift.

with

grouped as (
    select * from {{ ref('fct_contact_touches') }}
    where campaign_id is not null and uplift_group is not null
),

by_campaign as (
    select
        'campaign' as uplift_scope,
        concat('campaign:', cast(campaign_id as string)) as uplift_key,
        campaign_id,
        max(campaign_code) as campaign_code,
        max(product_line) as product_line,
        count_if(uplift_group = 'treated') as treated,
        count_if(uplift_group = 'treated' and converted) as treated_converted,
        count_if(uplift_group = 'holdout') as holdout,
        count_if(uplift_group = 'holdout' and converted) as holdout_converted
    from grouped
    group by campaign_id
),

by_line as (
    select
        'product_line' as uplift_scope,
        concat('product_line:', product_line) as uplift_key,
        cast(null as bigint) as campaign_id,
        cast(null as string) as campaign_code,
        product_line,
        count_if(uplift_group = 'treated') as treated,
        count_if(uplift_group = 'treated' and converted) as treated_converted,
        count_if(uplift_group = 'holdout') as holdout,
        count_if(uplift_group = 'holdout' and converted) as holdout_converted
    from grouped
    group by product_line
),

counted as (
    select * from by_campaign
    union all
    select * from by_line
),

rates as (
    select
        counted.*,
        cast(counted.treated_converted as double) as x1,
        cast(counted.treated as double) as n1,
        cast(counted.holdout_converted as double) as x2,
        cast(counted.holdout as double) as n2
    from counted
),

intervals as (
    select
        rates.*,
        case when rates.n1 > 0 then rates.x1 / rates.n1 end as p1,
        case when rates.n2 > 0 then rates.x2 / rates.n2 end as p2,
        case when rates.n1 > 0 then {{ wilson_low('rates.x1', 'rates.n1') }} end as l1,
        case when rates.n1 > 0 then {{ wilson_high('rates.x1', 'rates.n1') }} end as u1,
        case when rates.n2 > 0 then {{ wilson_low('rates.x2', 'rates.n2') }} end as l2,
        case when rates.n2 > 0 then {{ wilson_high('rates.x2', 'rates.n2') }} end as u2
    from rates
),

final as (
    select
        uplift_key,
        uplift_scope,
        campaign_id,
        campaign_code,
        product_line,
        treated,
        treated_converted,
        holdout,
        holdout_converted,
        p1 as treated_rate,
        p2 as holdout_rate,
        case when n1 > 0 and n2 > 0 then p1 - p2 end as difference,
        case
            when n1 > 0 and n2 > 0
                then greatest(-1D, (p1 - p2) - sqrt(power(p1 - l1, 2) + power(u2 - p2, 2)))
        end as ci_low,
        case
            when n1 > 0 and n2 > 0
                then least(1D, (p1 - p2) + sqrt(power(u1 - p1, 2) + power(p2 - l2, 2)))
        end as ci_high
    from intervals
)

select * from final
