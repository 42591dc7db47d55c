{#-
    Each buying customer's order history as of the run's "now": how many orders, how much, when,
    the span between their first and last order (for the expected inter-order interval), how
    many had a discount, and orders in the last `tessera__purchase_trend_days` against the
    same length of time before that (the purchase trend).
-#}

{%- set trend_days = var('tessera__purchase_trend_days') %}

with

orders as (

    select * from {{ ref('int_traits__orders') }}

),

trend_windows as (

    select
        {{ tessera_now() }} - to_days({{ trend_days }}) as recent_from,
        {{ tessera_now() }} - to_days(2 * {{ trend_days }}) as prior_from

)

select
    orders.customer_id,
    count(*) as orders,
    sum(orders.total_price) as revenue,
    avg(orders.total_price) as average_order_value,
    min(orders.ordered_at) as first_order_at,
    max(orders.ordered_at) as last_order_at,
    (epoch({{ tessera_now() }}) - epoch(max(orders.ordered_at))) / 86400.0 as days_since_last_order,
    (epoch(max(orders.ordered_at)) - epoch(min(orders.ordered_at))) / 86400.0 as order_span_days,
    count(*) filter (where orders.has_discount) as discounted_orders,
    count(*) filter (where orders.ordered_at > trend_windows.recent_from) as recent_orders,
    count(*) filter (
        where orders.ordered_at <= trend_windows.recent_from and orders.ordered_at > trend_windows.prior_from
    ) as prior_orders
from orders
cross join trend_windows
group by orders.customer_id
