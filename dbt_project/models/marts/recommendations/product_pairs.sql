{#-
    Item-to-item pairs for analysts and merchandisers: for each product, the products the same
    customers also looked at or bought (int_products__pairs, method in its header), with both
    products' titles and whether the paired product can be sold now.
-#}

with

pairs as (

    select * from {{ ref('int_products__pairs') }}

),

catalog as (

    select * from {{ ref('int_products__catalog') }}

)

select
    pairs.product_id,
    pairs.paired_product_id,
    product.title as product_title,
    product.category as product_category,
    paired.title as paired_product_title,
    paired.category as paired_product_category,
    pairs.customers_together,
    pairs.buyers_together,
    pairs.product_customers,
    pairs.paired_product_customers,
    pairs.similarity,
    pairs.lift,
    pairs.neighbour_rank,
    coalesce(paired.is_available, false) as is_paired_product_available
from pairs
left join catalog as product on pairs.product_id = product.product_id
left join catalog as paired on pairs.paired_product_id = paired.product_id
