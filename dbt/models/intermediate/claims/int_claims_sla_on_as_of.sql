-- Claims reported up to the as-of date with their policy's organisation and the state of both SLA clocks on
-- that date: the rows the dashboards' claims marts (claims_open, claims_sla_daily) aggregate. At risk is a
-- clock still running with `claim_sla_at_risk_working_days_left` (1) working day or less left, as the
-- serving API flags a claim; a claim is at risk only when it is not already breached.

{% set review_limit = var('claim_review_sla_working_days') %}
{% set payment_limit = var('claim_payment_sla_working_days') %}
{% set left = var('claim_sla_at_risk_working_days_left') %}

with

claims as (
    select * from {{ ref('fct_claims') }}
),

policies as (
    select * from {{ ref('stg_silver__policies') }}
),

organisations as (
    select * from {{ ref('int_organizations_pathed') }}
),

measured as (
    select
        claims.claim_id,
        cast(claims.reported_at as date) as reported_date,
        {{ as_of_date() }} as as_of_date,
        organisations.org_id,
        organisations.org_path,
        organisations.org_name,
        organisations.branch_name,
        coalesce(claims.product_line, 'unknown') as product_line,
        claims.status,
        claims.is_open,
        cast(coalesce(claims.amount_claimed, 0) as decimal(18, 2)) as amount_claimed,
        claims.review_started_at is not null as is_reviewed,
        claims.review_working_days,
        claims.is_review_sla_breached,
        claims.review_started_at is null
        and claims.review_working_days between {{ review_limit }} - {{ left }} and {{ review_limit }}
            as is_review_at_risk,
        claims.approved_at is not null as is_approved,
        claims.approved_at is not null and claims.paid_at is not null as is_paid,
        claims.payment_working_days,
        coalesce(claims.is_payment_sla_breached, false) as is_payment_sla_breached,
        claims.approved_at is not null
        and claims.paid_at is null
        and claims.payment_working_days between {{ payment_limit }} - {{ left }} and {{ payment_limit }}
            as is_payment_at_risk,
        claims.is_sla_breached,
        {{ working_days_between('claims.reported_at', as_of_date()) }} as age_working_days
    from claims
    inner join policies on claims.policy_id = policies.id
    inner join organisations on policies.org_id = organisations.org_id
    where cast(claims.reported_at as date) <= {{ as_of_date() }}
),

final as (
    select
        *,
        not is_sla_breached and (is_review_at_risk or is_payment_at_risk) as is_at_risk,
        case
            when age_working_days <= 1 then '0-1'
            when age_working_days <= 3 then '2-3'
            when age_working_days <= 5 then '4-5'
            when age_working_days <= 10 then '6-10'
            else '11+'
        end as age_band
    from measured
)

select * from final
