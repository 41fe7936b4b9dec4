-- The Sales recordings dashboard: dual recordings by the day they were recorded, organisation, product and agent,
-- counted by review status (pending, rejected, completed), with the QC sample drawn from the completed reviews
-- and the product's configured QC sample ratio. Agents appear by their employee code and masked name; nothing
-- about the customer is carried.
--
-- org_path is the organisation's path from the head office, '/1/<branch>/<sub_branch>/' (the dashboards'
-- row-level security matches '%/<org id>/%'); branch_name is the branch of the organisation (itself for a branch).

with

recordings as (
    select * from {{ ref('fct_sales_recordings') }}
),

products as (
    select * from {{ ref('stg_silver__products') }}
),

agents as (
    select * from {{ ref('stg_silver__agents') }}
),

organizations as (
    select * from {{ ref('stg_silver__organizations') }}
),

org_paths as (
    select
        org.id as org_id,
        org.name as org_name,
        concat(
            '/',
            concat_ws('/', cast(grandparent.id as string), cast(parent.id as string), cast(org.id as string)),
            '/'
        ) as org_path,
        case
            when org.level = 'branch' then org.name
            when parent.level = 'branch' then parent.name
            else coalesce(grandparent.name, parent.name, org.name)
        end as branch_name
    from organizations as org
    left join organizations as parent
        on org.parent_id = parent.id
    left join organizations as grandparent
        on parent.parent_id = grandparent.id
),

counted as (
    select
        cast(recordings.recorded_at as date) as recorded_date,
        recordings.org_id,
        recordings.product_id,
        recordings.agent_id,
        count(*) as recordings,
        sum(case when recordings.is_review_pending then 1 else 0 end) as pending,
        sum(case when recordings.is_review_rejected then 1 else 0 end) as rejected,
        sum(case when recordings.is_review_passed then 1 else 0 end) as completed,
        sum(case when recordings.is_review_passed and recordings.is_qc_sampled then 1 else 0 end) as qc_sampled,
        sum(case when recordings.is_qc_failed then 1 else 0 end) as qc_failed
    from recordings
    group by cast(recordings.recorded_at as date), recordings.org_id, recordings.product_id, recordings.agent_id
),

final as (
    select
        counted.recorded_date,
        counted.org_id,
        org_paths.org_path,
        org_paths.org_name,
        org_paths.branch_name,
        counted.product_id,
        products.name as product_name,
        coalesce(products.line, 'unknown') as product_line,
        agents.agent_code,
        agents.name_masked as agent_name_masked,
        cast(counted.recordings as bigint) as recordings,
        cast(counted.pending as bigint) as pending,
        cast(counted.rejected as bigint) as rejected,
        cast(counted.completed as bigint) as completed,
        cast(counted.qc_sampled as bigint) as qc_sampled,
        cast(counted.qc_failed as bigint) as qc_failed,
        cast(products.qc_sample_ratio as double) as qc_sample_ratio,
        cast(counted.completed * products.qc_sample_ratio as double) as qc_target_samples
    from counted
    inner join org_paths
        on counted.org_id = org_paths.org_id
    left join products
        on counted.product_id = products.id
    left join agents
        on counted.agent_id = agents.id
)

select * from final
