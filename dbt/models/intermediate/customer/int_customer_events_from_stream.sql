-- Stream events (bronze.events) mapped onto the timeline: the event_type decides the domain, the
-- payload's identifying field becomes object_id and its money value the amount; the whole payload
-- (tokens only, no clear PII by contract) stays in attributes.
-- Business events that restate a row the core systems hold (claim_filed, complaint_opened,
-- complaint_resolved) are taken from silver (claims.reported_at, complaints.opened_at/resolved_at) and
-- their stream copies left out, so they are not counted twice. Those that carry what silver cannot
-- (every claim status change with who and why, each document, every consent change with its purpose
-- and text version, an erasure) keep their own types. The outbox relays at least once: a repeat of an
-- event_id is dropped in stg_events__events.

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
            when event_type in ('claim_status_changed', 'claim_document_attached') then 'claim'
            when event_type = 'consent_changed' then 'consent'
            when event_type = 'customer_erased' then 'lifecycle'
        end as domain,
        event_type,
        coalesce(get_json_object(payload, '$.channel'), source) as channel,
        -- the most specific thing the event is about, in this order
        coalesce(
            get_json_object(payload, '$.coupon_id'),
            get_json_object(payload, '$.message_id'),
            get_json_object(payload, '$.article_id'),
            get_json_object(payload, '$.form'),
            get_json_object(payload, '$.claim_no'),
            get_json_object(payload, '$.policy_no'),
            get_json_object(payload, '$.product_code'),
            get_json_object(payload, '$.page'),
            get_json_object(payload, '$.request_id')
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
