-- One row per touch (campaign:<id>:<occurrence>:<customer>, journey and service touches too): its final decision
-- (or, while it waits, its latest deferral), the reason, channel, product line and campaign, the first time each
-- delivery state was reached, its comparison group and whether it converted.
--
-- Definitions are mo/campaigns/results.py's: the group is `holdout` for a final `holdout` suppression,
-- `treated` for every other final decision taken after the holdout was drawn (intention to treat: a cap or
-- quiet hours stopping the message does not leave the group), none for touches stopped before it. Converted:
-- a policy of the touch's product line (the campaign's) issued to the customer (coalesce(issued_at,
-- created_at)) within campaign_attribution_days after the decision, both ends included.

with

ledger as (
    select * from {{ ref('stg_campaigns__ledger') }}
),

campaigns as (
    select * from {{ ref('stg_campaigns__campaigns') }}
),

deliveries as (
    select * from {{ ref('stg_campaigns__deliveries') }}
),

policies as (
    select * from {{ ref('stg_silver__policies') }}
),

products as (
    select * from {{ ref('stg_silver__products') }}
),

ranked as (
    select
        ledger.*,
        row_number() over (
            partition by ledger.touch_key
            order by case when ledger.final_key is not null then 0 else 1 end, ledger.attempt desc
        ) as rank_in_touch,
        count(*) over (partition by ledger.touch_key) as decisions
    from ledger
),

touches as (
    select
        ranked.*,
        coalesce(campaigns.product_line, ranked.product_line) as line,
        campaigns.campaign_code,
        campaigns.campaign_name
    from ranked
    left join campaigns on ranked.campaign_id = campaigns.campaign_id
    where ranked.rank_in_touch = 1
),

states as (
    select
        ledger_id,
        min(case when state = 'queued' then state_at end) as first_queued_at,
        min(case when state = 'sent' then state_at end) as first_sent_at,
        min(case when state = 'delivered' then state_at end) as first_delivered_at,
        min(case when state = 'failed' then state_at end) as first_failed_at,
        min(case when state = 'dead_letter' then state_at end) as first_dead_letter_at,
        min(case when state = 'opened' then state_at end) as first_opened_at,
        min(case when state = 'clicked' then state_at end) as first_clicked_at
    from deliveries
    group by ledger_id
),

issued as (
    select
        policies.customer_id,
        products.line,
        coalesce(policies.issued_at, policies.created_at) as issued_at
    from policies
    inner join products on policies.product_id = products.id
),

conversions as (
    select
        touches.touch_key,
        min(issued.issued_at) as converted_at
    from touches
    inner join issued
        on
            touches.customer_id = issued.customer_id
            and touches.line = issued.line
            and touches.decided_at <= issued.issued_at
            and issued.issued_at <= touches.decided_at + interval {{ var('campaign_attribution_days') }} days
    where touches.final_key is not null
    group by touches.touch_key
),

final as (
    select
        touches.touch_key,
        touches.touch_source,
        touches.campaign_id,
        touches.campaign_code,
        touches.campaign_name,
        touches.occurrence,
        touches.customer_id,
        touches.channel,
        touches.purpose,
        touches.line as product_line,
        touches.decision,
        touches.reason,
        touches.final_key is not null as is_final,
        cast(touches.decisions as int) as decisions,
        touches.ledger_id,
        touches.message_id,
        touches.decided_at,
        case
            when touches.final_key is null then null
            when touches.reason = 'holdout' then 'holdout'
            when touches.reason in {{ campaign_reasons_before_holdout() }} then null
            else 'treated'
        end as uplift_group,
        states.first_queued_at,
        states.first_sent_at,
        states.first_delivered_at,
        states.first_failed_at,
        states.first_dead_letter_at,
        states.first_opened_at,
        states.first_clicked_at,
        conversions.converted_at is not null as converted,
        conversions.converted_at
    from touches
    left join states on touches.ledger_id = states.ledger_id
    left join conversions on touches.touch_key = conversions.touch_key
)

select * from final
