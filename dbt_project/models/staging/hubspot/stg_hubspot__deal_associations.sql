with

source as (

    select * from {{ source('hubspot', 'deals__associations') }}

),

-- The one join staging allows: dlt links a child row to its parent only by row id, so the
-- deal's own id is carried over from the parent row, and nothing else.
deals as (

    select
        _dlt_id,
        id
    from {{ source('hubspot', 'deals') }}

),

renamed as (

    select

        ----------  ids
        cast(deals.id as varchar) as deal_id,
        cast(source.to_id as varchar) as associated_object_id,

        ----------  strings
        source.to_object_type as associated_object_type,
        source.association_type

    from source
    left join deals
        on source._dlt_parent_id = deals._dlt_id

)

select * from renamed
