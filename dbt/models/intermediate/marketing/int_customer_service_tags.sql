-- Risk and service tags: claims in the last 12 months, open claims, open complaints, sales recordings
-- waiting for review; and the lifetime paid claims the value tags need.

{% set as_of = tag_as_of_date() %}

with

customers as (
    select * from {{ ref('stg_silver__customers') }}
),

claims as (
    select * from {{ ref('stg_silver__claims') }}
),

complaints as (
    select * from {{ ref('stg_silver__complaints') }}
),

recordings as (
    select * from {{ ref('stg_silver__sales_recordings') }}
),

claim_summary as (
    select
        customer_id,
        -- 12 months back from the as-of date, that day excluded: a claim reported on 2024-12-31 is
        -- outside the window of 2025-12-31, one reported on 2025-01-01 inside.
        count(
            case
                when cast(reported_at as date) > add_months({{ as_of }}, -12)
                    then 1
            end
        ) as claims_12m,
        max(case when status not in ('paid', 'rejected') then 1 else 0 end) = 1 as has_open_claim,
        sum(case when status = 'paid' then coalesce(amount_paid, 0) else 0 end) as paid_claims_amount
    from claims
    where cast(reported_at as date) <= {{ as_of }}
    group by customer_id
),

complaint_summary as (
    select
        customer_id,
        max(case when status in ('open', 'in_progress') then 1 else 0 end) = 1 as has_open_complaint
    from complaints
    where cast(opened_at as date) <= {{ as_of }}
    group by customer_id
),

recording_summary as (
    select
        customer_id,
        max(case when review_status = 'pending' then 1 else 0 end) = 1 as has_pending_recording_review
    from recordings
    where cast(recorded_at as date) <= {{ as_of }}
    group by customer_id
),

final as (
    select
        customers.id as customer_id,
        cast(coalesce(claim_summary.claims_12m, 0) as int) as claims_12m,
        coalesce(claim_summary.has_open_claim, false) as has_open_claim,
        coalesce(complaint_summary.has_open_complaint, false) as has_open_complaint,
        coalesce(recording_summary.has_pending_recording_review, false) as has_pending_recording_review,
        cast(coalesce(claim_summary.paid_claims_amount, 0) as double) as paid_claims_amount
    from customers
    left join claim_summary on customers.id = claim_summary.customer_id
    left join complaint_summary on customers.id = complaint_summary.customer_id
    left join recording_summary on customers.id = recording_summary.customer_id
)

select * from final
