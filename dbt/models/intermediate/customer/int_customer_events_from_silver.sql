-- Timeline events derived from the current state of the silver tables: each timestamp a row carries is
-- something that happened to the customer. event_id is '<silver table>:<id>:<event_type>', stable across
-- builds. Silver keeps the current state only, so a status change is dated by the column that records
-- it (claims and recordings carry one per transition) or, for policy lapses and surrenders, by the
-- row's last update. Consents hold the latest decision per channel only.

with

customers as (
    select * from {{ ref('stg_silver__customers') }}
),

policies as (
    select * from {{ ref('stg_silver__policies') }}
),

claims as (
    select * from {{ ref('stg_silver__claims') }}
),

recordings as (
    select * from {{ ref('stg_silver__sales_recordings') }}
),

consents as (
    select * from {{ ref('stg_silver__consents') }}
),

complaints as (
    select * from {{ ref('stg_silver__complaints') }}
),

lifecycle_events as (
    select
        id as customer_id,
        created_at as event_at,
        'lifecycle' as domain,
        'customer_created' as event_type,
        acquisition_channel as channel,
        cast(id as string) as object_id,
        cast(null as double) as amount,
        to_json(named_struct('province', province, 'city', city, 'risk_rating', risk_rating)) as attributes,
        'customers' as source_table,
        id as source_id
    from customers
),

policy_milestones as (
    select
        *,
        stack(
            6,
            'policy_quoted', created_at,
            'policy_issued', issued_at,
            'policy_started',
            case when status not in ('quoted', 'pending_payment') then cast(start_date as timestamp) end,
            'policy_expired', case when status = 'expired' then cast(date_add(end_date, 1) as timestamp) end,
            'policy_lapsed', case when status = 'lapsed' then updated_at end,
            'policy_surrendered', case when status = 'surrendered' then updated_at end
        ) as (milestone, milestone_at)
    from policies
),

policy_events as (
    select
        customer_id,
        milestone_at as event_at,
        'policy' as domain,
        milestone as event_type,
        case when agent_id is not null then 'agent' end as channel,
        cast(id as string) as object_id,
        cast(premium as double) as amount,
        to_json(named_struct(
            'policy_no', policy_no,
            'product_id', product_id,
            'subject_type', subject_type,
            'status', status,
            'renewal_of', renewal_of
        )) as attributes,
        'policies' as source_table,
        id as source_id
    from policy_milestones
    where milestone_at is not null
),

claim_milestones as (
    select
        *,
        stack(
            5,
            'claim_filed', reported_at, cast(amount_claimed as double),
            'claim_docs_requested', docs_requested_at, cast(null as double),
            'claim_approved', approved_at, cast(amount_approved as double),
            'claim_rejected', rejected_at, cast(null as double),
            'claim_paid', paid_at, cast(amount_paid as double)
        ) as (milestone, milestone_at, milestone_amount)
    from claims
),

claim_events as (
    select
        customer_id,
        milestone_at as event_at,
        'claim' as domain,
        milestone as event_type,
        cast(null as string) as channel,
        cast(id as string) as object_id,
        milestone_amount as amount,
        to_json(named_struct(
            'claim_no', claim_no,
            'policy_id', policy_id,
            'incident_type', incident_type,
            'status', status
        )) as attributes,
        'claims' as source_table,
        id as source_id
    from claim_milestones
    where milestone_at is not null
),

recording_milestones as (
    select
        *,
        stack(
            2,
            'recording_made', recorded_at,
            case
                when review_status = 'completed' then 'recording_approved'
                when review_status = 'rejected' then 'recording_rejected'
            end,
            reviewed_at
        ) as (milestone, milestone_at)
    from recordings
),

recording_events as (
    select
        customer_id,
        milestone_at as event_at,
        'recording' as domain,
        milestone as event_type,
        'agent' as channel,
        cast(id as string) as object_id,
        cast(null as double) as amount,
        to_json(named_struct(
            'ticket_no', ticket_no,
            'policy_id', policy_id,
            'review_status', review_status,
            'qc_sampled', qc_sampled,
            'qc_result', qc_result
        )) as attributes,
        'sales_recordings' as source_table,
        id as source_id
    from recording_milestones
    where milestone is not null and milestone_at is not null
),

consent_events as (
    select
        customer_id,
        decided_at as event_at,
        'consent' as domain,
        concat('consent_', status) as event_type,
        channel,
        cast(id as string) as object_id,
        cast(null as double) as amount,
        to_json(named_struct('decided_via', source)) as attributes,
        'consents' as source_table,
        id as source_id
    from consents
),

complaint_milestones as (
    select
        *,
        stack(
            2,
            'complaint_opened', opened_at,
            'complaint_resolved', resolved_at
        ) as (milestone, milestone_at)
    from complaints
),

complaint_events as (
    select
        customer_id,
        milestone_at as event_at,
        'complaint' as domain,
        milestone as event_type,
        channel,
        cast(id as string) as object_id,
        cast(null as double) as amount,
        to_json(named_struct(
            'complaint_no', complaint_no,
            'policy_id', policy_id,
            'category', category,
            'status', status
        )) as attributes,
        'complaints' as source_table,
        id as source_id
    from complaint_milestones
    where milestone_at is not null
),

unioned as (
    select * from lifecycle_events
    union all
    select * from policy_events
    union all
    select * from claim_events
    union all
    select * from recording_events
    union all
    select * from consent_events
    union all
    select * from complaint_events
),

final as (
    select
        concat(source_table, ':', cast(source_id as string), ':', event_type) as event_id,
        customer_id,
        event_at,
        domain,
        event_type,
        channel,
        object_id,
        amount,
        attributes,
        source_table as source
    from unioned
)

select * from final
