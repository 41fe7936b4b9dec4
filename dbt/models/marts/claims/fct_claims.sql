-- One row per claim with its policy's product line and the claim SLA (review within 3 working days of
-- the report, payment within 5 working days of approval; see int_claims_sla_measured).

with

claims as (
    select * from {{ ref('stg_silver__claims') }}
),

policies as (
    select * from {{ ref('stg_silver__policies') }}
),

products as (
    select * from {{ ref('stg_silver__products') }}
),

sla as (
    select * from {{ ref('int_claims_sla_measured') }}
),

final as (
    select
        claims.id as claim_id,
        claims.claim_no,
        claims.policy_id,
        claims.customer_id,
        policies.product_id,
        products.line as product_line,
        claims.incident_at,
        claims.incident_type,
        claims.incident_province,
        claims.incident_city,
        claims.reported_at,
        claims.status,
        claims.status not in ('paid', 'rejected') as is_open,
        claims.amount_claimed,
        claims.amount_approved,
        claims.amount_paid,
        claims.submitted_at,
        sla.review_started_at,
        claims.docs_requested_at,
        claims.approved_at,
        claims.rejected_at,
        claims.paying_at,
        claims.paid_at,
        sla.review_working_days,
        sla.is_review_sla_breached,
        sla.payment_working_days,
        sla.is_payment_sla_breached,
        sla.is_sla_breached,
        claims.created_at,
        claims.updated_at
    from claims
    inner join sla
        on claims.id = sla.claim_id
    left join policies
        on claims.policy_id = policies.id
    left join products
        on policies.product_id = products.id
)

select * from final
