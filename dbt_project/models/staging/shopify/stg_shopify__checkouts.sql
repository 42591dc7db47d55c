-- Shopify's abandoned checkouts: checkouts that were started and not completed.
with

source as (

    select * from {{ source('shopify', 'abandoned_checkouts') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as checkout_id,
        -- The checkout's token: an order's checkout_token and the checkout_id Mixpanel events carry.
        cast(token as varchar) as checkout_token,
        nullif(cast(cart_token as varchar), '') as cart_token,
        cast(customer__id as varchar) as customer_id,

        ----------  strings
        cast(email as varchar) as email_raw,
        {{ normalize_email('email') }} as email,
        cast(phone as varchar) as phone_raw,
        {{ normalize_phone('phone') }} as phone,
        abandoned_checkout_url as recovery_url,
        source_name,
        currency,
        customer_locale,

        ----------  numbers
        cast(subtotal_price as double) as subtotal_price,
        cast(total_line_items_price as double) as total_line_items_price,
        cast(total_discounts as double) as total_discounts,
        cast(total_tax as double) as total_tax,
        cast(total_price as double) as total_price,
        cast(total_weight as integer) as total_weight_grams,

        ----------  booleans
        coalesce(buyer_accepts_marketing, false) as has_buyer_accepted_marketing,
        coalesce(taxes_included, false) as is_tax_included,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        cast(completed_at as timestamptz) as completed_at,
        cast(closed_at as timestamptz) as closed_at

    from source

)

select * from renamed
