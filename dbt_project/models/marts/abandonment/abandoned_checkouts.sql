{#-
    The cart-abandonment audience (ARCHITECTURE.md, "Cart-abandonment audience"): each
    eligible customer once, with their most recent abandoned checkout.

    Abandoned at "now" (the run's logical time): the checkout has at least one line item, its
    last activity is at least `tessera__abandon_after_hours` and at most
    `tessera__abandon_window_days` before now, and its customer has placed no order, under any
    of their identities, since it started.
    Eligible: a known customer with a deliverable email whose email-marketing consent is
    subscribed (unsubscribed, bounced or spam-complaint anywhere excludes them) and who has made
    no erasure request.
    "Not already sent this checkout" is the activation ledger's to apply: it excludes the
    `checkout_token` it has sent for.
-#}

{%- set free_shipping_threshold = var('tessera__free_shipping_threshold') -%}

with

checkouts as (

    select * from {{ ref('fct_checkouts') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

customer_orders as (

    select
        records.customer_id,
        orders.created_at
    from {{ ref('stg_shopify__orders') }} as orders
    inner join {{ ref('int_identity__records') }} as records
        on 'shopify_order:' || orders.order_id = records.record_id
    where
        records.customer_id is not null
        and not orders.is_test
        and orders.created_at <= {{ tessera_now() }}

),

abandoned as (

    select checkouts.*
    from checkouts
    where
        checkouts.customer_id is not null
        and checkouts.line_items > 0
        -- Its own order counts even when that order resolved to nobody (a placeholder email).
        and not coalesce(checkouts.completed_at <= {{ tessera_now() }}, false)
        and checkouts.last_activity_at
        <= {{ tessera_now() }} - to_hours(cast({{ var('tessera__abandon_after_hours') }} as bigint))
        and checkouts.last_activity_at
        >= {{ tessera_now() }} - to_days(cast({{ var('tessera__abandon_window_days') }} as bigint))
        and not exists (
            select 1
            from customer_orders
            where
                customer_orders.customer_id = checkouts.customer_id
                and customer_orders.created_at >= checkouts.started_at
        )

),

eligible as (

    select
        abandoned.*,
        customers.email
    from abandoned
    inner join customers on abandoned.customer_id = customers.customer_id
    where
        customers.identity_status = 'known'
        and customers.email is not null
        and customers.email_consent_status = 'subscribed'
        and not customers.is_email_bounced
        and not customers.has_marked_email_as_spam
        and customers.is_erased is not true
    -- The customer's most recent abandoned checkout.
    qualify row_number() over (
        partition by abandoned.customer_id
        order by abandoned.started_at desc, abandoned.last_activity_at desc, abandoned.checkout_token asc
    ) = 1

),

cart_lines as (

    select
        cart_line.checkout_token,
        to_json(
            list(
                {
                    'product_id': cart_line.product_id,
                    'variant_id': cart_line.variant_id,
                    'sku': cart_line.sku,
                    'title': cart_line.product_title,
                    'variant': cart_line.variant_title,
                    'quantity': cart_line.quantity,
                    'price': cart_line.price
                }
                order by cart_line.line_number
            )
        ) as line_items
    from {{ ref('int_checkout_line_items_unioned') }} as cart_line
    inner join eligible on cart_line.checkout_token = eligible.checkout_token
    group by cart_line.checkout_token

),

in_stock as (

    select
        variants.product_id,
        any_value(products.product_title) as product_title,
        min(variants.price) as price
    from {{ ref('stg_shopify__product_variants') }} as variants
    inner join {{ ref('stg_shopify__products') }} as products on variants.product_id = products.product_id
    where variants.inventory_quantity > 0 and products.product_status = 'active'
    group by variants.product_id

),

candidates as (

    -- Products the customer looked at, in stock, not already in the cart; only for carts below
    -- the free-shipping threshold, where one more item closes the gap.
    select
        eligible.customer_id,
        viewed.product_id,
        in_stock.product_title,
        in_stock.price,
        row_number() over (
            partition by eligible.customer_id
            order by viewed.view_count desc, viewed.last_viewed_at desc, viewed.product_id asc
        ) as recommendation_rank
    from eligible
    inner join {{ ref('int_product_views_aggregated') }} as viewed on eligible.customer_id = viewed.customer_id
    inner join in_stock on viewed.product_id = in_stock.product_id
    where
        eligible.cart_value < {{ free_shipping_threshold }}
        and not exists (
            select 1
            from {{ ref('int_checkout_line_items_unioned') }} as cart_line
            where cart_line.checkout_token = eligible.checkout_token and cart_line.product_id = viewed.product_id
        )

),

recommendations as (

    select
        customer_id,
        to_json(
            list(
                { 'product_id': product_id, 'title': product_title, 'price': price }
                order by recommendation_rank
            )
        ) as recommended_products,
        count(*) as recommended_product_count
    from candidates
    where recommendation_rank <= 3
    group by customer_id

)

select
    eligible.customer_id,
    eligible.email,
    eligible.checkout_token,
    eligible.checkout_id,
    eligible.started_at,
    eligible.last_activity_at,
    eligible.furthest_step,
    eligible.cart_value,
    eligible.items,
    cart_lines.line_items,
    cast({{ free_shipping_threshold }} as double) as free_shipping_threshold,
    round(greatest(cast({{ free_shipping_threshold }} as double) - eligible.cart_value, 0), 2) as free_shipping_gap,
    coalesce(recommendations.recommended_products, to_json([])) as recommended_products,
    coalesce(recommendations.recommended_product_count, 0) as recommended_product_count,
    eligible.recovery_url,
    {{ tessera_now() }} as evaluated_at
from eligible
left join cart_lines on eligible.checkout_token = cart_lines.checkout_token
left join recommendations on eligible.customer_id = recommendations.customer_id
