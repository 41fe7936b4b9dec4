-- Contact pressure against the send decision's caps, per day: how many customers had received how many marketing
-- messages in the trailing 7 x 24 h at the day's end (UTC), all channels together and on their busiest channel,
-- beside the caps the decision applies (contact_cap_7d, contact_cap_channel_7d, contact_cap_30d: dbt vars passed
-- by mo.marts.dbt.build_vars from the platform's settings, the decision's one definition).
--
-- A send is what the decision counts (mo/campaigns/ledger.window_counts): a ledger `send` of purpose marketing,
-- at its decided_at; the window at the end of day D is (D + 1 - 7 days, D + 1], as the decision's. Every set
-- of sends inside one such window was seen whole by its last send's decision, so a day's figure above a cap
-- means a cap was not applied. Days run from the first send to the week after the last (at most as_of_date);
-- a customer with no send in the window is in no row. Not keyed by organisation (docs/dashboards.md).

with

sends as (
    select
        customer_id,
        channel,
        decided_at
    from {{ ref('fct_contact_touches') }}
    where decision = 'send' and purpose = 'marketing'
),

days as (
    select
        explode(
            sequence(
                cast(min(decided_at) as date),
                least(
                    date_add(cast(max(decided_at) as date), 7),
                    greatest({{ as_of_date() }}, cast(min(decided_at) as date))
                )
            )
        ) as pressure_date
    from sends
),

in_window as (
    select
        days.pressure_date,
        sends.customer_id,
        sends.channel
    from days
    inner join sends
        on
            sends.decided_at > cast(date_add(days.pressure_date, 1) as timestamp) - interval 7 days
            and sends.decided_at <= cast(date_add(days.pressure_date, 1) as timestamp)
),

per_channel as (
    select
        pressure_date,
        customer_id,
        channel,
        count(*) as channel_touches
    from in_window
    group by pressure_date, customer_id, channel
),

per_customer as (
    select
        pressure_date,
        customer_id,
        cast(sum(channel_touches) as int) as touches_7d,
        cast(max(channel_touches) as int) as busiest_channel_touches_7d
    from per_channel
    group by pressure_date, customer_id
),

final as (
    select
        pressure_date,
        touches_7d,
        busiest_channel_touches_7d,
        count(*) as customers,
        cast({{ var('contact_cap_7d') }} as int) as cap_7d,
        cast({{ var('contact_cap_channel_7d') }} as int) as cap_channel_7d,
        cast({{ var('contact_cap_30d') }} as int) as cap_30d
    from per_customer
    group by pressure_date, touches_7d, busiest_channel_touches_7d
)

select * from final
