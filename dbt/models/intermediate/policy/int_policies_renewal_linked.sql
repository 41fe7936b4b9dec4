-- Each policy with its place in the renewal chain: the policy it renews and the policy that renewed it
-- (at most one: the source links a renewal to its predecessor through renewal_of).

with

policies as (
    select * from {{ ref('stg_silver__policies') }}
),

renewals as (
    select
        renewal_of as renewed_policy_id,
        min(id) as renewed_by_policy_id
    from policies
    where renewal_of is not null
    group by renewal_of
),

final as (
    select
        policies.id as policy_id,
        policies.renewal_of as renewal_of_policy_id,
        renewals.renewed_by_policy_id,
        policies.renewal_of is not null as is_renewal,
        renewals.renewed_by_policy_id is not null as is_renewed
    from policies
    left join renewals
        on policies.id = renewals.renewed_policy_id
)

select * from final
