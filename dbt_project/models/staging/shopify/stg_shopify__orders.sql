with

source as (

    select * from {{ source('shopify', 'orders') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as order_id,
        cast(customer__id as varchar) as customer_id,
        -- The token of the checkout the order completed: the checkout_id Mixpanel events carry.
        nullif(cast(checkout_token as varchar), '') as checkout_token,

        ----------  strings
        name as order_name,
        cast(email as varchar) as email_raw,
        {{ normalize_email('email') }} as email,
        cast(phone as varchar) as phone_raw,
        {{ normalize_phone('phone') }} as phone,
        source_name,
        financial_status,
        fulfillment_status,
        currency,
        nullif(trim(shipping_address__city), '') as shipping_city,
        shipping_address__province_code as shipping_province_code,
        shipping_address__country_code as shipping_country_code,
        nullif(trim(shipping_address__zip), '') as shipping_postal_code,

        ----------  numbers
        cast(order_number as integer) as order_number,
        cast(subtotal_price as double) as subtotal_price,
        cast(total_line_items_price as double) as total_line_items_price,
        cast(total_discounts as double) as total_discounts,
        cast(json_extract_string(total_shipping_price_set__shop_money, '$.amount') as double) as total_shipping_price,
        cast(total_tax as double) as total_tax,
        cast(total_price as double) as total_price,

        ----------  booleans
        coalesce(test, false) as is_test,
        coalesce(taxes_included, false) as is_tax_included,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(processed_at as timestamptz) as processed_at,
        cast(updated_at as timestamptz) as updated_at,
        cast(closed_at as timestamptz) as closed_at,
        cast(cancelled_at as timestamptz) as cancelled_at

    from source

)

select * from renamed
