-- Claims by the day they were reported, organisation and product line: reviewed and paid, in how many
-- working days in total, within and past the 3 and 5 working-day limits on the as-of date (contract:
-- schemas/serving/analytics.yaml claims_sla_daily).

with

claims as (
    select * from {{ ref('int_claims_sla_on_as_of') }}
),

final as (
    select
        reported_date,
        cast(org_id as bigint) as org_id,
        org_path,
        org_name,
        branch_name,
        product_line,
        count(*) as claims,
        cast(sum(case when is_open then 1 else 0 end) as bigint) as open_claims,
        cast(sum(case when is_reviewed then 1 else 0 end) as bigint) as reviewed,
        cast(sum(case when is_reviewed then review_working_days else 0 end) as bigint) as review_working_days,
        cast(
            sum(case when is_reviewed and not is_review_sla_breached then 1 else 0 end) as bigint
        ) as review_within_sla,
        cast(sum(case when is_review_sla_breached then 1 else 0 end) as bigint) as review_breached,
        cast(sum(case when is_review_at_risk then 1 else 0 end) as bigint) as review_at_risk,
        cast(sum(case when is_approved then 1 else 0 end) as bigint) as approved,
        cast(sum(case when is_paid then 1 else 0 end) as bigint) as paid,
        cast(sum(case when is_paid then payment_working_days else 0 end) as bigint) as payment_working_days,
        cast(sum(case when is_paid and not is_payment_sla_breached then 1 else 0 end) as bigint) as payment_within_sla,
        cast(sum(case when is_payment_sla_breached then 1 else 0 end) as bigint) as payment_breached,
        cast(sum(case when is_payment_at_risk then 1 else 0 end) as bigint) as payment_at_risk
    from claims
    group by reported_date, org_id, org_path, org_name, branch_name, product_line
)

select * from final
