-- Claim SLA clocks in working days (Monday to Friday, UTC calendar dates):
--   review:  the first review action (under review, documents requested, approved or rejected) within
--            3 working days of the report;
--   payment: paid within 5 working days of approval.
-- A clock still running is measured up to the as-of date, so a claim waiting too long is already in
-- breach before anyone acts on it. A claim that never reached approval has no payment clock (nulls).

with

claims as (
    select * from {{ ref('stg_silver__claims') }}
),

milestones as (
    select
        id as claim_id,
        reported_at,
        approved_at,
        paid_at,
        coalesce(under_review_at, docs_requested_at, approved_at, rejected_at) as review_started_at,
        {{ as_of_date() }} as as_of_date
    from claims
),

clocks as (
    select
        claim_id,
        reported_at,
        review_started_at,
        approved_at,
        paid_at,
        {{ working_days_between(
            'reported_at',
            'coalesce(cast(review_started_at as date), as_of_date)'
        ) }} as review_working_days,
        case
            when approved_at is not null
                then {{ working_days_between(
                    'approved_at',
                    'coalesce(cast(paid_at as date), as_of_date)'
                ) }}
        end as payment_working_days
    from milestones
),

final as (
    select
        claim_id,
        review_started_at,
        review_working_days,
        review_working_days > {{ var('claim_review_sla_working_days') }} as is_review_sla_breached,
        payment_working_days,
        payment_working_days > {{ var('claim_payment_sla_working_days') }} as is_payment_sla_breached,
        (
            review_working_days > {{ var('claim_review_sla_working_days') }}
            or coalesce(payment_working_days > {{ var('claim_payment_sla_working_days') }}, false)
        ) as is_sla_breached
    from clocks
)

select * from final
