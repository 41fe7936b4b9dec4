-- Every version of every segment definition, with the display fields read out of the definition JSON.

with

source as (
    select * from {{ source('segments', 'definitions') }}
),

final as (
    select
        segment_id,
        version as segment_version,
        kind as segment_kind,
        get_json_object(definition, '$.name') as segment_name,
        get_json_object(definition, '$.owner') as segment_owner,
        definition,
        content_hash,
        created_at,
        created_by
    from source
)

select * from final
