-- Every live organisation with its path from the head office, '/1/<branch>/<sub_branch>/', and the name of
-- its branch (itself for a branch, the head office for the head office). "The subtree of organisation N" is
-- `org_path like '%/N/%'`: the dashboards' row-level security clause. The tree is at most four levels deep
-- (head office, branch, sub-branch, and one below); a deeper organisation fails the path test below.

with

organizations as (
    select * from {{ ref('stg_silver__organizations') }}
),

chains as (
    select
        org.id as org_id,
        org.name as org_name,
        org.level,
        org.parent_id,
        parent.id as parent_org_id,
        grandparent.id as grandparent_org_id,
        great_grandparent.id as great_grandparent_org_id,
        great_grandparent.parent_id as beyond_parent_id,
        case
            when org.level = 'branch' then org.name
            when parent.level = 'branch' then parent.name
            when grandparent.level = 'branch' then grandparent.name
            when great_grandparent.level = 'branch' then great_grandparent.name
            else coalesce(great_grandparent.name, grandparent.name, parent.name, org.name)
        end as branch_name
    from organizations as org
    left join organizations as parent on org.parent_id = parent.id
    left join organizations as grandparent on parent.parent_id = grandparent.id
    left join organizations as great_grandparent on grandparent.parent_id = great_grandparent.id
),

final as (
    select
        org_id,
        org_name,
        level,
        concat(
            '/',
            concat_ws(
                '/',
                cast(great_grandparent_org_id as string),
                cast(grandparent_org_id as string),
                cast(parent_org_id as string),
                cast(org_id as string)
            ),
            '/'
        ) as org_path,
        branch_name,
        beyond_parent_id is not null as is_deeper_than_four_levels
    from chains
)

select * from final
