{#-
    Each customer's latest open cart, as of the run's "now": the most recent Shopify checkout
    that has line items, did not complete, had activity within `tessera__offer_cart_days`, and
    was not followed by an order of the same customer (under any identity) since it started.
    The abandonment marts decide who gets an abandonment email; this is the cart the offer
    rules look at (`checkout_id` joins the two).
-#}

with

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where customer_id is not null

),

line_items as (

    select
        checkout_id,
        count(*) as line_items,
        sum(quantity) as units
    from {{ ref('stg_shopify__checkout_line_items') }}
    group by checkout_id

),

carts as (

    select
        records.customer_id,
        checkouts.checkout_id,
        checkouts.subtotal_price as cart_value,
        line_items.units as cart_units,
        checkouts.created_at as started_at,
        least(coalesce(checkouts.updated_at, checkouts.created_at), {{ tessera_now() }}) as last_activity_at
    from {{ ref('stg_shopify__checkouts') }} as checkouts
    inner join records on records.record_id = 'shopify_checkout:' || checkouts.checkout_id
    inner join line_items on checkouts.checkout_id = line_items.checkout_id
    where
        checkouts.completed_at is null
        and checkouts.created_at <= {{ tessera_now() }}

),

orders as (

    select * from {{ ref('int_traits__orders') }}

)

select
    carts.customer_id,
    carts.checkout_id,
    carts.cart_value,
    carts.cart_units,
    carts.started_at,
    carts.last_activity_at
from carts
where
    carts.last_activity_at > {{ tessera_now() }} - to_days({{ var('tessera__offer_cart_days') }})
    and not exists (
        select 1
        from orders
        where orders.customer_id = carts.customer_id and orders.ordered_at >= carts.started_at
    )
qualify row_number() over (
    partition by carts.customer_id
    order by carts.last_activity_at desc, carts.checkout_id desc
) = 1
