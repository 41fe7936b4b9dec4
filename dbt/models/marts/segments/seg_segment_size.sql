-- Segment size per segment and as-of date (the day's last run): customers, the policies in force on that
-- date among the members' policies, the distinct subjects those policies insure, and their premium.
--
-- In force on a run's date D: issued (status in_force, or expired since) and D within start..end. The
-- policy mart holds each policy's current status, so a policy lapsed or surrendered since is left out of
-- older dates (when it stopped is not recorded); on the build's own as-of date this is fct_policies'
-- is_in_force. Subjects: a vehicle is its plate token (renewals of one car count once), a property its
-- holder and masked address (no address token exists), a person the policy holder.

with

runs as (
    select * from {{ ref('int_segment_runs_deduplicated') }}
),

membership as (
    select * from {{ ref('stg_segments__membership') }}
),

policies as (
    select * from {{ ref('fct_policies') }}
),

members as (
    select
        runs.segment_id,
        runs.as_of_date,
        membership.customer_id
    from runs
    inner join membership
        on
            runs.run_id = membership.run_id
            and runs.as_of_date = membership.as_of_date
            and runs.segment_id = membership.segment_id
),

member_policies as (
    select
        members.segment_id,
        members.as_of_date,
        policies.policy_id,
        policies.subject_type,
        policies.premium,
        case policies.subject_type
            when 'vehicle'
                then coalesce(concat('vehicle:', policies.vehicle_plate_token), concat('policy:', policies.policy_id))
            when 'property'
                then concat_ws(':', 'property', policies.customer_id, policies.property_address_masked)
            else concat('person:', policies.customer_id)
        end as subject_key
    from members
    inner join policies
        on members.customer_id = policies.customer_id
    where
        policies.status in ('in_force', 'expired')
        and policies.start_date <= members.as_of_date
        and policies.end_date >= members.as_of_date
),

policy_totals as (
    select
        segment_id,
        as_of_date,
        count(distinct policy_id) as policies,
        count(distinct subject_key) as insured_subjects,
        count(distinct case when subject_type = 'vehicle' then subject_key end) as insured_vehicles,
        count(distinct case when subject_type = 'property' then subject_key end) as insured_properties,
        count(distinct case when subject_type = 'person' then subject_key end) as insured_persons,
        sum(premium) as premium_total
    from member_policies
    group by segment_id, as_of_date
),

final as (
    select
        runs.segment_id,
        runs.as_of_date,
        runs.run_id,
        runs.segment_version,
        runs.segment_kind,
        runs.segment_name,
        runs.customers,
        cast(coalesce(policy_totals.insured_subjects, 0) as bigint) as insured_subjects,
        cast(coalesce(policy_totals.insured_vehicles, 0) as bigint) as insured_vehicles,
        cast(coalesce(policy_totals.insured_properties, 0) as bigint) as insured_properties,
        cast(coalesce(policy_totals.insured_persons, 0) as bigint) as insured_persons,
        cast(coalesce(policy_totals.policies, 0) as bigint) as policies,
        cast(coalesce(policy_totals.premium_total, 0) as decimal(18, 2)) as premium_total,
        runs.is_latest_for_segment,
        runs.computed_at
    from runs
    left join policy_totals
        on
            runs.segment_id = policy_totals.segment_id
            and runs.as_of_date = policy_totals.as_of_date
)

select * from final
