-- Campaign results per campaign x channel x product line x period, for the weekly and monthly reports: one row
-- set with period_type 'week' (ISO week, starting Monday) and one with 'month' (calendar month), each touch in
-- the period of its decision (final, or latest deferral while it waits). Channel 'none': suppressed before a
-- channel was chosen.
--
-- audience: touches decided or waiting (the audience members the decision reached); suppressed by reason, one
-- column per known reason (a Superset chart stacks them as they are); sent .. clicked: touches whose message
-- reached the state; converted: sent touches that converted (fct_contact_touches). treated / holdout and their
-- conversions let a chart show each period's rates; the interval is in mart_campaign_results' sibling
-- mart_campaign_uplift.

{%- set reasons = campaign_suppress_reasons() %}

with

touches as (
    select * from {{ ref('fct_contact_touches') }}
    where campaign_id is not null
),

periods as (
    select
        touches.*,
        'week' as period_type,
        cast(date_trunc('week', touches.decided_at) as date) as period_start
    from touches
    union all
    select
        touches.*,
        'month' as period_type,
        cast(date_trunc('month', touches.decided_at) as date) as period_start
    from touches
),

counted as (
    select
        campaign_id,
        coalesce(channel, 'none') as channel,
        product_line,
        period_type,
        period_start,
        max(campaign_code) as campaign_code,
        max(campaign_name) as campaign_name,
        count(*) as audience,
        count_if(is_final) as decided,
        count_if(not is_final) as waiting,
        count_if(decision = 'suppress') as suppressed,
        {%- for reason in reasons %}
            count_if(decision = 'suppress' and reason = '{{ reason }}') as suppressed_{{ reason }},
        {%- endfor %}
        count_if(
            decision = 'suppress'
            and reason not in ('{{ reasons | join("', '") }}')
        ) as suppressed_other,
        count(first_sent_at) as sent,
        count(first_delivered_at) as delivered,
        count(first_failed_at) as failed,
        count(first_dead_letter_at) as dead_letter,
        count(first_opened_at) as opened,
        count(first_clicked_at) as clicked,
        count_if(decision = 'send' and converted) as converted,
        count_if(uplift_group = 'treated') as treated,
        count_if(uplift_group = 'treated' and converted) as treated_converted,
        count_if(uplift_group = 'holdout') as holdout,
        count_if(uplift_group = 'holdout' and converted) as holdout_converted
    from periods
    group by campaign_id, coalesce(channel, 'none'), product_line, period_type, period_start
),

final as (
    select
        campaign_id,
        campaign_code,
        campaign_name,
        channel,
        product_line,
        period_type,
        period_start,
        case
            when period_type = 'week'
                then concat(
                        cast(extract(yearofweek from period_start) as string),
                        '-W',
                        lpad(cast(weekofyear(period_start) as string), 2, '0')
                    )
            else date_format(period_start, 'yyyy-MM')
        end as period_label,
        audience,
        decided,
        waiting,
        suppressed,
        {%- for reason in reasons %}
            suppressed_{{ reason }},
        {%- endfor %}
        suppressed_other,
        sent,
        delivered,
        failed,
        dead_letter,
        opened,
        clicked,
        converted,
        treated,
        treated_converted,
        holdout,
        holdout_converted
    from counted
)

select * from final
