{#-
    The line items of every checkout, one row per checkout and product, from the best source
    that has them: the order the checkout became (what was bought), else Shopify's abandoned
    checkout (what Shopify saved once the shopper typed an email), else the cart the storefront
    tracked on Checkout Started (the only record of a checkout left before the email was typed).
    Titles and variants come from the catalog when the source lacks them (for a tracked cart,
    the variant with the line's SKU; the one with the smallest id should the catalog list a SKU
    twice), so the catalog never adds or removes a line.
-#}

with

orders as (

    select
        order_id,
        checkout_token
    from {{ ref('stg_shopify__orders') }}
    where checkout_token is not null

),

order_lines as (

    select
        orders.checkout_token,
        'shopify_order' as line_source,
        line_items.product_id,
        line_items.variant_id,
        line_items.sku,
        line_items.product_title,
        line_items.quantity,
        line_items.price
    from {{ ref('stg_shopify__order_line_items') }} as line_items
    inner join orders on line_items.order_id = orders.order_id

),

checkout_lines as (

    select
        checkouts.checkout_token,
        'shopify_checkout' as line_source,
        line_items.product_id,
        line_items.variant_id,
        line_items.sku,
        line_items.product_title,
        line_items.quantity,
        line_items.price
    from {{ ref('stg_shopify__checkout_line_items') }} as line_items
    inner join {{ ref('stg_shopify__checkouts') }} as checkouts on line_items.checkout_id = checkouts.checkout_id

),

tracked_carts as (

    select
        checkout_token,
        unnest(
            from_json(
                cart_products,
                '[{"product_id": "VARCHAR", "sku": "VARCHAR", "name": "VARCHAR", '
                || '"price": "DOUBLE", "quantity": "INTEGER"}]'
            )
        ) as product
    from {{ ref('int_checkout_events_pivoted') }}
    where cart_products is not null

),

tracked_lines as (

    select
        tracked_carts.checkout_token,
        'mixpanel' as line_source,
        product.product_id,
        cast(null as varchar) as variant_id,
        product.sku,
        product.name as product_title,
        product.quantity,
        product.price
    from tracked_carts

),

all_lines as (

    select
        *,
        1 as source_rank
    from order_lines
    union all
    select
        *,
        2 as source_rank
    from checkout_lines
    union all
    select
        *,
        3 as source_rank
    from tracked_lines

),

best_source as (

    select
        checkout_token,
        min(source_rank) as source_rank
    from all_lines
    group by checkout_token

),

variants as (

    select * from {{ ref('stg_shopify__product_variants') }}

),

variants_by_sku as (

    -- One variant per SKU, so a SKU the catalog lists twice does not count a tracked line twice
    -- (and a catalog change never changes how many lines or units a checkout has).
    select
        sku,
        variant_id
    from variants
    where sku is not null
    qualify row_number() over (partition by sku order by variant_id) = 1

),

products as (

    select * from {{ ref('stg_shopify__products') }}

),

chosen as (

    select
        all_lines.checkout_token,
        all_lines.line_source,
        all_lines.product_id,
        -- A tracked cart names the product and SKU, not the variant: the catalog's variant with that SKU.
        coalesce(all_lines.variant_id, by_sku.variant_id) as variant_id,
        all_lines.sku,
        coalesce(all_lines.product_title, products.product_title) as product_title,
        coalesce(all_lines.quantity, 1) as quantity,
        all_lines.price
    from all_lines
    inner join best_source
        on
            all_lines.checkout_token = best_source.checkout_token
            and all_lines.source_rank = best_source.source_rank
    left join variants_by_sku as by_sku on all_lines.variant_id is null and all_lines.sku = by_sku.sku
    left join products on all_lines.product_id = products.product_id

)

select
    chosen.checkout_token,
    row_number() over (
        partition by chosen.checkout_token order by chosen.product_id, chosen.variant_id, chosen.sku
    ) as line_number,
    chosen.line_source,
    chosen.product_id,
    chosen.variant_id,
    chosen.sku,
    chosen.product_title,
    variants.variant_title,
    chosen.quantity,
    chosen.price,
    chosen.quantity * chosen.price as line_value
from chosen
left join variants on chosen.variant_id = variants.variant_id
