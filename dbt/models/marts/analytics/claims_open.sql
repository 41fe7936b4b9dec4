-- Open claims (neither paid nor rejected) on the as-of date by the policy's organisation, product line,
-- status and age in working days since the report (contract: schemas/serving/analytics.yaml claims_open).

with

claims as (
    select * from {{ ref('int_claims_sla_on_as_of') }}
),

final as (
    select
        as_of_date,
        cast(org_id as bigint) as org_id,
        org_path,
        org_name,
        branch_name,
        product_line,
        status,
        age_band,
        count(*) as open_claims,
        cast(sum(case when is_at_risk then 1 else 0 end) as bigint) as at_risk,
        cast(sum(case when is_sla_breached then 1 else 0 end) as bigint) as breached,
        cast(sum(amount_claimed) as double) as amount_claimed
    from claims
    where is_open
    group by as_of_date, org_id, org_path, org_name, branch_name, product_line, status, age_band
)

select * from final
