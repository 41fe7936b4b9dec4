-- Stream events (bronze.events) mapped onto the timeline: the event_type decides the domain, the
-- payload's identifying field becomes object_id and its money value the amount; the whole payload
-- (tokens only, no clear PII by contract) stays in attributes.
-- claim_filed from the stream restates a claim the claims system already holds: the timeline takes
-- that fact from silver (claims.reported_at) and leaves the stream copy out, so it is not counted twice.

with

events as (
    select * from {{ ref('stg_events__events') }}
),

mapped as (
    select
        event_id,
        customer_id,
        occurred_at as event_at,
        case
            when event_type = 'app_page_view' then 'app'
            when event_type in ('wechat_follow', 'wechat_click') then 'wechat'
            when event_type = 'form_submit' then 'form'
            when event_type in ('coupon_claim', 'coupon_redeem') then 'coupon'
            when event_type = 'message_open' then 'message'
            when event_type = 'policy_near_renewal' then 'policy'
        end as domain,
        event_type,
        coalesce(get_json_object(payload, '$.channel'), source) as channel,
        -- the most specific thing the event is about, in this order
        coalesce(
            get_json_object(payload, '$.coupon_id'),
            get_json_object(payload, '$.message_id'),
            get_json_object(payload, '$.article_id'),
            get_json_object(payload, '$.form'),
            get_json_object(payload, '$.policy_no'),
            get_json_object(payload, '$.product_code'),
            get_json_object(payload, '$.page')
        ) as object_id,
        cast(get_json_object(payload, '$.value') as double) as amount,
        payload as attributes,
        topic as source
    from events
),

final as (
    select
        event_id,
        customer_id,
        event_at,
        domain,
        event_type,
        channel,
        object_id,
        amount,
        attributes,
        source
    from mapped
    -- unknown types (a contract added before this mapping) wait here rather than break the timeline
    where domain is not null
)

select * from final
