with

source as (

    select * from {{ source('mixpanel', 'events') }}

),

renamed as (

    select

        ----------  ids
        -- Mixpanel's `$insert_id`, its de-duplication key.
        cast(insert_id as varchar) as insert_id,  -- noqa: RF04
        nullif(cast(distinct_id as varchar), '') as distinct_id,
        nullif(cast(device_id as varchar), '') as device_id,
        nullif(cast(user_id as varchar), '') as user_id,
        -- The storefront tracks Shopify's checkout token as checkout_id and its cart token as cart_id.
        nullif(cast(checkout_id as varchar), '') as checkout_id,
        nullif(cast(cart_id as varchar), '') as cart_id,
        nullif(cast(order_id as varchar), '') as order_id,
        nullif(cast(product_id as varchar), '') as product_id,

        ----------  strings
        event as event_name,
        step_name,
        sku,
        name as product_name,
        category as product_category,
        currency,
        payment_method,
        shipping_method,
        device_type,
        os,
        browser,
        utm_source,
        utm_medium,
        cast(products as varchar) as products,
        cast(other_properties as varchar) as other_properties,

        ----------  numbers
        cast(step as integer) as step,
        cast(quantity as integer) as quantity,
        cast(price as double) as price,
        cast(value as double) as value,  -- noqa: RF04
        cast(revenue as double) as revenue,
        cast(total as double) as total,
        cast(shipping as double) as shipping,
        cast(tax as double) as tax,
        cast(fees as double) as fees,
        cast(discount as double) as discount,

        ----------  booleans
        cast(guest_checkout_enabled as boolean) as guest_checkout_enabled,

        ----------  timestamps
        cast(time as timestamptz) as occurred_at,
        cast(processed_at as timestamptz) as processed_at

    from source

)

select * from renamed
