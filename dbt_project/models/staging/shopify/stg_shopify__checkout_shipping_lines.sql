with

source as (

    select * from {{ source('shopify', 'abandoned_checkouts__shipping_lines') }}

),

-- The one join staging allows: dlt links a child row to its parent only by row id, so the
-- checkout's own id is carried over from the parent row, and nothing else.
checkouts as (

    select
        _dlt_id,
        id
    from {{ source('shopify', 'abandoned_checkouts') }}

),

renamed as (

    select

        ----------  ids
        cast(checkouts.id as varchar) as checkout_id,

        ----------  strings
        source.title as shipping_method,
        source.code as shipping_code,
        source.source as shipping_source,

        ----------  numbers
        cast(source._dlt_list_idx as integer) as shipping_line_position,
        cast(source.price as double) as price,
        cast(source.discounted_price as double) as discounted_price

    from source
    left join checkouts
        on source._dlt_parent_id = checkouts._dlt_id

)

select * from renamed
