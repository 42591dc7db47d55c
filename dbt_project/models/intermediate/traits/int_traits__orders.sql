{#-
    One row per order placed up to the run's "now", with the customer who placed it under any
    of their identities. Test and cancelled orders are not sales and are left out; an order
    whose identifiers are all blocked belongs to nobody and is left out too (nothing here can
    be said about a person without one).
-#}

with

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where customer_id is not null

)

select
    orders.order_id,
    records.customer_id,
    orders.created_at as ordered_at,
    orders.subtotal_price,
    orders.total_discounts,
    orders.total_shipping_price,
    orders.total_price,
    coalesce(orders.total_discounts, 0) > 0 as has_discount
from {{ ref('stg_shopify__orders') }} as orders
inner join records on records.record_id = 'shopify_order:' || orders.order_id
where
    not orders.is_test
    and orders.cancelled_at is null
    and orders.created_at <= {{ tessera_now() }}
