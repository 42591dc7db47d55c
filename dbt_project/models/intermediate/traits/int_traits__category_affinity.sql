{#-
    Each customer's favourite category, from what they viewed, added to cart and bought: every
    interaction scores the weight of `tessera__recommendations_weights` for its kind, decayed
    by age (int_products__customer_interactions), summed per category. The top category is the
    highest score, then the most recent; `top_category_share` is its share of the customer's
    total (1 = a single-category shopper). Scores are compared to 9 decimals: a sum of doubles
    differs in its last bits from build to build (parallel aggregation), which would otherwise
    break a tie differently each night.
-#}

{%- set weights = var('tessera__recommendations_weights') %}

with

interactions as (

    select * from {{ ref('int_products__customer_interactions') }}

),

products as (

    -- Every product ever sold or shown, available or not: taste does not depend on stock.
    select * from {{ ref('int_products__catalog') }}

),

category_scores as (

    select
        interactions.customer_id,
        products.category,
        sum(
            {{ weights['view'] }} * interactions.weighted_views
            + {{ weights['add'] }} * interactions.weighted_adds
            + {{ weights['purchase'] }} * interactions.weighted_units_bought
        ) as score,
        max(interactions.last_interaction_at) as last_interaction_at
    from interactions
    inner join products on interactions.product_id = products.product_id
    where products.category is not null
    group by interactions.customer_id, products.category

)

select
    customer_id,
    arg_max(category, (round(score, 9), last_interaction_at, category)) as top_category,
    max(score) / nullif(sum(score), 0) as top_category_share,
    count(*) as categories_engaged
from category_scores
group by customer_id
