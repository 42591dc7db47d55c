with

source as (

    select * from {{ source('shopify', 'orders__line_items') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as order_line_item_id,
        -- Written into each line item by the loader, so no join to the parent row is needed.
        cast(order_id as varchar) as order_id,
        cast(product_id as varchar) as product_id,
        cast(variant_id as varchar) as variant_id,

        ----------  strings
        sku,
        title as product_title,
        name as line_item_name,
        fulfillment_status,

        ----------  numbers
        cast(quantity as integer) as quantity,
        cast(current_quantity as integer) as current_quantity,
        cast(fulfillable_quantity as integer) as fulfillable_quantity,
        cast(price as double) as price,
        cast(total_discount as double) as total_discount,

        ----------  booleans
        coalesce(gift_card, false) as is_gift_card,
        coalesce(requires_shipping, false) as is_shipping_required,
        coalesce(taxable, false) as is_taxable,
        coalesce(product_exists, false) as has_product

    from source

)

select * from renamed
