with

source as (

    select * from {{ source('shopify', 'products__variants') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as variant_id,
        cast(product_id as varchar) as product_id,
        cast(inventory_item_id as varchar) as inventory_item_id,

        ----------  strings
        title as variant_title,
        sku,
        option1 as option_1,
        inventory_policy,

        ----------  numbers
        cast(position as integer) as variant_position,
        cast(price as double) as price,
        cast(inventory_quantity as integer) as inventory_quantity,

        ----------  booleans
        coalesce(taxable, false) as is_taxable,
        coalesce(requires_shipping, false) as is_shipping_required,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from renamed
