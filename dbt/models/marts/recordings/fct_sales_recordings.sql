-- One row per sales dual recording with its review outcome, QC sampling outcome and review turnaround.
-- A pending review's turnaround is measured up to the as-of date (how long it has been waiting).

with

recordings as (
    select * from {{ ref('stg_silver__sales_recordings') }}
),

products as (
    select * from {{ ref('stg_silver__products') }}
),

final as (
    select
        recordings.id as recording_id,
        recordings.ticket_no,
        recordings.policy_id,
        recordings.customer_id,
        recordings.agent_id,
        recordings.org_id,
        recordings.product_id,
        products.line as product_line,
        recordings.recorded_at,
        recordings.duration_seconds,
        recordings.file_uri,
        recordings.file_size_bytes,
        recordings.is_encrypted,
        recordings.review_status,
        recordings.review_status = 'pending' as is_review_pending,
        recordings.review_status = 'completed' as is_review_passed,
        recordings.review_status = 'rejected' as is_review_rejected,
        recordings.reviewer_code,
        recordings.review_comment,
        recordings.reviewed_at,
        -- null while the review is pending
        cast(
            round((unix_timestamp(recordings.reviewed_at) - unix_timestamp(recordings.recorded_at)) / 3600, 2)
            as double
        ) as review_turnaround_hours,
        {{ working_days_between(
            'recordings.recorded_at',
            'coalesce(cast(recordings.reviewed_at as date), ' ~ as_of_date() ~ ')'
        ) }} as review_working_days,
        recordings.qc_sampled as is_qc_sampled,
        recordings.qc_result,
        coalesce(recordings.qc_result = 'fail', false) as is_qc_failed,
        recordings.created_at,
        recordings.updated_at
    from recordings
    left join products
        on recordings.product_id = products.id
)

select * from final
