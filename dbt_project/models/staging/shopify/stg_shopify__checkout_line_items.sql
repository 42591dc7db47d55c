with

source as (

    select * from {{ source('shopify', 'abandoned_checkouts__line_items') }}

),

renamed as (

    select

        ----------  ids
        -- Written into each line item by the loader, so no join to the parent row is needed.
        cast(checkout_id as varchar) as checkout_id,
        cast(key as varchar) as line_item_key,
        cast(product_id as varchar) as product_id,
        cast(variant_id as varchar) as variant_id,

        ----------  strings
        sku,
        title as product_title,
        fulfillment_service,

        ----------  numbers
        cast(quantity as integer) as quantity,
        cast(price as double) as price,
        cast(line_price as double) as line_price,
        cast(grams as integer) as grams,

        ----------  booleans
        coalesce(gift_card, false) as is_gift_card,
        coalesce(requires_shipping, false) as is_shipping_required,
        coalesce(taxable, false) as is_taxable

    from source

)

select * from renamed
