{#-
    Item-to-item co-occurrence: two products go together when the same customers looked at or
    bought both within the last `tessera__recommendations_lookback_days`.

    - `similarity` is the co-occurrence count normalized by both products' reach (cosine,
      customers_together / sqrt(customers of a * customers of b)): a bestseller that everyone
      sees is not "bought together" with everything.
    - `lift` is how much more often the pair occurs than if the products were independent.
    - Pairs seen with fewer than `tessera__recommendations_min_pair_customers` customers are
      noise and left out. One row per ordered pair (a, b) and (b, a), so reading "what goes
      with product X" is one filter.
-#}

with

interactions as (

    select
        customer_id,
        product_id,
        purchases > 0 as was_bought
    from {{ ref('int_products__customer_interactions') }}
    where
        last_interaction_at
        > {{ tessera_now() }} - to_days({{ var('tessera__recommendations_lookback_days') }})

),

-- Customers and products numbered for this run: the self-join below pairs every two products
-- of each customer (tens of millions of rows at a million customers), on integers, not text.
customer_keys as (

    select
        customer_id,
        row_number() over (order by customer_id) as customer_key
    from (select distinct customer_id from interactions) as customers

),

product_keys as (

    select
        product_id,
        row_number() over (order by product_id) as product_key
    from (select distinct product_id from interactions) as products

),

baskets as (

    select
        customer_keys.customer_key,
        product_keys.product_key,
        interactions.was_bought
    from interactions
    inner join customer_keys on interactions.customer_id = customer_keys.customer_id
    inner join product_keys on interactions.product_id = product_keys.product_id

),

product_reach as (

    select
        product_key,
        count(*) as customers
    from baskets
    group by product_key

),

population as (

    select count(distinct customer_key) as customers from baskets

),

together_keys as (

    select
        product_a.product_key,
        product_b.product_key as paired_product_key,
        count(*) as customers_together,
        count(*) filter (where product_a.was_bought and product_b.was_bought) as buyers_together
    from baskets as product_a
    inner join baskets as product_b
        on
            product_a.customer_key = product_b.customer_key
            and product_a.product_key != product_b.product_key
    group by product_a.product_key, product_b.product_key
    having count(*) >= {{ var('tessera__recommendations_min_pair_customers') }}

),

together as (

    select
        product_a.product_id,
        product_b.product_id as paired_product_id,
        together_keys.product_key,
        together_keys.paired_product_key,
        together_keys.customers_together,
        together_keys.buyers_together
    from together_keys
    inner join product_keys as product_a on together_keys.product_key = product_a.product_key
    inner join product_keys as product_b on together_keys.paired_product_key = product_b.product_key

),

scored as (

    select
        together.product_id,
        together.paired_product_id,
        together.customers_together,
        together.buyers_together,
        reach_a.customers as product_customers,
        reach_b.customers as paired_product_customers,
        together.customers_together / sqrt(reach_a.customers * reach_b.customers) as similarity,
        together.customers_together * population.customers / (reach_a.customers * reach_b.customers) as lift
    from together
    inner join product_reach as reach_a on together.product_key = reach_a.product_key
    inner join product_reach as reach_b on together.paired_product_key = reach_b.product_key
    cross join population

)

select
    *,
    row_number() over (
        partition by product_id
        order by similarity desc, customers_together desc, paired_product_id asc
    ) as neighbour_rank
from scored
