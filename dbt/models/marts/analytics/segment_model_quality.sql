-- Smart segments' model quality over versions: one row per recorded version of each propensity model
-- (segments.models, written by mo.segments.smart when a training runs), with the holdout AUC and the sizes of the
-- training and holdout sets.

with

models as (
    select * from {{ ref('stg_segments__models') }}
),

final as (
    select
        model_id,
        model_version,
        as_of_date,
        trained_at,
        algorithm,
        rows_train,
        rows_holdout,
        positives_train,
        positives_holdout,
        cast(positives_holdout / nullif(rows_holdout, 0) as double) as holdout_positive_rate,
        auc
    from models
)

select * from final
