-- Live customers and those opted in (their latest decision) per province and marketing channel, every
-- channel of var consent_channels for every province (contract: schemas/serving/analytics.yaml).

with

profiles as (
    select * from {{ ref('customer_profile') }}
),

decisions as (
    select * from {{ ref('int_customer_consent_decisions_latest') }}
),

channels as (
    select explode(array('{{ var("consent_channels") | join("', '") }}')) as channel  -- noqa: LT05
),

final as (
    select
        profiles.province,
        channels.channel,
        count(*) as customers,
        cast(sum(case when decisions.is_opted_in then 1 else 0 end) as bigint) as opted_in
    from profiles
    cross join channels
    left join decisions
        on
            profiles.customer_id = decisions.customer_id
            and channels.channel = decisions.channel
    group by profiles.province, channels.channel
)

select * from final
