-- The latest marketing consent decision per customer and channel up to the as-of date (a later opt-out
-- overrides an earlier opt-in, and the other way round; ties: the later update, then the higher id).
-- Shared by the profile's consent tags and the dashboards' consent coverage (customer_consent).

with

consents as (
    select * from {{ ref('stg_silver__consents') }}
),

ranked as (
    select
        customer_id,
        channel,
        status,
        decided_at,
        row_number() over (
            partition by customer_id, channel
            order by decided_at desc, updated_at desc, id desc
        ) as decision_rank
    from consents
    where cast(decided_at as date) <= {{ tag_as_of_date() }}
),

final as (
    select
        customer_id,
        channel,
        status,
        decided_at,
        status = 'opt_in' as is_opted_in
    from ranked
    where decision_rank = 1
)

select * from final
