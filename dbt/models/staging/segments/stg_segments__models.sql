-- One row per recorded version of a propensity model (segments.models): what the dashboards read of it.

with

source as (
    select * from {{ source('segments', 'models') }}
),

final as (
    select
        model_id,
        version as model_version,
        as_of as as_of_date,
        trained_at,
        algorithm,
        rows_train,
        rows_holdout,
        positives_train,
        positives_holdout,
        auc
    from source
)

select * from final
