{#-
    How popular each product is across all customers over the last
    `tessera__recommendations_lookback_days`, for the fallback when a customer has no history.
    The score adds views, adds to cart and units bought with the weights of
    `tessera__recommendations_weights`, each decayed by age (half-life
    `tessera__recommendations_half_life_days`), so last week's bestseller beats last quarter's.
    `popularity` is the score scaled to 0-1 (the most popular product is 1).
-#}

{%- set weights = var('tessera__recommendations_weights') %}

with

interactions as (

    select * from {{ ref('int_products__customer_interactions') }}
    where
        last_interaction_at
        > {{ tessera_now() }} - to_days({{ var('tessera__recommendations_lookback_days') }})

),

per_product as (

    select
        product_id,
        count(*) filter (where view_events > 0) as viewers,
        count(*) filter (where add_events > 0) as adders,
        count(*) filter (where purchases > 0) as buyers,
        sum(units_bought) as units_bought,
        sum(
            {{ weights['view'] }} * weighted_views
            + {{ weights['add'] }} * weighted_adds
            + {{ weights['purchase'] }} * weighted_units_bought
        ) as popularity_score
    from interactions
    group by product_id

),

catalog as (

    select * from {{ ref('int_products__catalog') }}

)

select
    catalog.product_id,
    coalesce(per_product.viewers, 0) as viewers,
    coalesce(per_product.adders, 0) as adders,
    coalesce(per_product.buyers, 0) as buyers,
    coalesce(per_product.units_bought, 0) as units_bought,
    coalesce(per_product.popularity_score, 0) as popularity_score,
    coalesce(per_product.popularity_score / nullif(max(per_product.popularity_score) over (), 0), 0) as popularity,
    row_number() over (
        order by per_product.popularity_score desc nulls last, catalog.product_id asc
    ) as popularity_rank
from catalog
left join per_product on catalog.product_id = per_product.product_id
