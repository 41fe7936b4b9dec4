-- Silver contact_ledger as dbt reads it: every decision (send, suppress, defer) about an intended touch.

with

source as (
    select * from {{ source('campaigns', 'contact_ledger') }}
),

final as (
    select
        id as ledger_id,
        touch_key,
        attempt,
        final_key,
        source as touch_source,
        campaign_id,
        occurrence,
        customer_id,
        channel,
        purpose,
        product_line,
        decision,
        reason,
        message_id,
        decided_at
    from source
)

select * from final
