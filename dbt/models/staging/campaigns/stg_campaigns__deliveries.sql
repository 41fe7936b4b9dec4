-- Silver contact_deliveries as dbt reads them: one row per (message, state) reached.

with

source as (
    select * from {{ source('campaigns', 'contact_deliveries') }}
),

final as (
    select
        id as delivery_id,
        message_id,
        ledger_id,
        customer_id,
        state,
        at as state_at
    from source
)

select * from final
