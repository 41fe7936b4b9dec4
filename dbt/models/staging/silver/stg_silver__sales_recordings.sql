-- Silver sales_recordings as dbt reads them: column names as in schemas/sources/sales_recordings.yaml.

with

source as (
    select * from {{ source('silver', 'sales_recordings') }}
),

final as (
    select
        id,
        ticket_no,
        policy_id,
        agent_id,
        org_id,
        product_id,
        customer_id,
        recorded_at,
        duration_seconds,
        file_uri,
        file_size_bytes,
        checksum_sha256,
        is_encrypted,
        review_status,
        reviewer_code,
        review_comment,
        reviewed_at,
        qc_sampled,
        qc_result,
        created_at,
        updated_at,
        deleted_at
    from source
)

select * from final
