-- Orders per customer: what they bought, and when. Test and cancelled orders are not sales.
with

orders as (

    select * from {{ ref('stg_shopify__orders') }}
    where not is_test and cancelled_at is null

),

records as (

    select * from {{ ref('int_identity__records') }}
    where customer_id is not null

)

select
    records.customer_id,
    count(*) as orders,
    sum(orders.total_price) as revenue,
    avg(orders.total_price) as average_order_value,
    min(orders.created_at) as first_order_at,
    max(orders.created_at) as last_order_at,
    arg_max(orders.total_price, orders.created_at) as last_order_value
from orders
inner join records on records.record_id = 'shopify_order:' || orders.order_id
group by records.customer_id
