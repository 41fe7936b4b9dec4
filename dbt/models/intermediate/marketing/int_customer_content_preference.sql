-- Content preference: the topic a customer reads most in the app and on WeChat over 90 days, from
-- the stream events' payloads (schemas/events/app_page_view, wechat_click). A product page counts
-- for the product's line; service pages and WeChat menus map to their topic; navigation pages
-- (home, policy list, member centre, my policies, online service) say nothing about interest.

{% set as_of = tag_as_of_date() %}

with

customers as (
    select * from {{ ref('stg_silver__customers') }}
),

events as (
    select * from {{ ref('stg_events__events') }}
),

products as (
    select * from {{ ref('stg_silver__products') }}
),

reads as (
    select
        customer_id,
        event_type,
        occurred_at,
        get_json_object(payload, '$.page') as page,
        get_json_object(payload, '$.product_code') as product_code,
        get_json_object(payload, '$.menu') as menu
    from events
    where
        event_type in ('app_page_view', 'wechat_click')
        and cast(occurred_at as date) between date_sub({{ as_of }}, 89) and {{ as_of }}
),

topics as (
    select
        reads.customer_id,
        reads.occurred_at,
        case
            when products.line is not null then products.line
            when reads.page = 'car_service' or reads.menu = '车生活' then 'auto'
            when reads.page = 'health_service' or reads.menu = '健康服务' then 'health'
            when reads.page in ('claim_progress', 'claim_report') or reads.menu = '理赔服务' then 'claims'
            when reads.page = 'renewal' or reads.menu = '续保' then 'renewal'
            when reads.page = 'coupon_center' then 'offers'
        end as topic
    from reads
    left join products on reads.product_code = products.product_code
),

topic_counts as (
    select
        customer_id,
        topic,
        count(*) as read_count,
        max(occurred_at) as last_read_at
    from topics
    where topic is not null
    group by customer_id, topic
),

ranked as (
    select
        customer_id,
        topic,
        row_number() over (
            partition by customer_id
            order by read_count desc, last_read_at desc, topic asc
        ) as topic_rank
    from topic_counts
),

final as (
    select
        customers.id as customer_id,
        ranked.topic as content_preference
    from customers
    left join ranked
        on
            customers.id = ranked.customer_id
            and ranked.topic_rank = 1
)

select * from final
