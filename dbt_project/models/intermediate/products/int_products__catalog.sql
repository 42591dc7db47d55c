{#-
    The catalog as recommendations and offers need it: one row per product with its category,
    price and stock. A product is `is_available` when it is active and at least one of its
    variants has units in stock (inventory_quantity > 0): a recommendation the shopper cannot
    buy is worse than none. The price shown is the cheapest variant in stock.
-#}

with

products as (

    select * from {{ ref('stg_shopify__products') }}

),

variants as (

    select * from {{ ref('stg_shopify__product_variants') }}

),

stock as (

    select
        product_id,
        sum(greatest(inventory_quantity, 0)) as inventory_quantity,
        count(*) filter (where inventory_quantity > 0) as variants_in_stock,
        min(price) filter (where inventory_quantity > 0) as in_stock_price,
        min(price) as lowest_price
    from variants
    group by product_id

)

select
    products.product_id,
    products.product_title as title,
    products.product_type as category,
    products.vendor,
    products.handle,
    products.product_status,
    coalesce(stock.in_stock_price, stock.lowest_price) as price,
    coalesce(stock.inventory_quantity, 0) as inventory_quantity,
    coalesce(stock.variants_in_stock, 0) as variants_in_stock,
    coalesce(products.product_status = 'active' and stock.variants_in_stock > 0, false) as is_available
from products
left join stock on products.product_id = stock.product_id
