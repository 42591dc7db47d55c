with

source as (

    select * from {{ source('shopify', 'orders__shipping_lines') }}

),

-- The one join staging allows: dlt links a child row to its parent only by row id, so the
-- order's own id is carried over from the parent row, and nothing else.
orders as (

    select
        _dlt_id,
        id
    from {{ source('shopify', 'orders') }}

),

renamed as (

    select

        ----------  ids
        cast(orders.id as varchar) as order_id,

        ----------  strings
        source.title as shipping_method,
        source.code as shipping_code,
        source.source as shipping_source,

        ----------  numbers
        cast(source._dlt_list_idx as integer) as shipping_line_position,
        cast(source.price as double) as price,
        cast(source.discounted_price as double) as discounted_price

    from source
    left join orders
        on source._dlt_parent_id = orders._dlt_id

)

select * from renamed
