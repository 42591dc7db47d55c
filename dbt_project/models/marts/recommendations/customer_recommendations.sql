{#-
    Up to `tessera__recommendations_per_customer` products per customer (known or anonymous)
    that they are likely to want, best first.

    Candidates come from three places, and a product's score adds them up:
    - `viewed`: the customer's own views and adds to cart in the lookback window, weighted by
      `tessera__recommendations_weights` and decayed by age;
    - `bought_together`: products that go with what the customer viewed, added or bought
      (int_products__pairs, the `tessera__recommendations_neighbours` closest of each), scored
      by the customer's interest in the source product times the pair's similarity;
    - `popular`: the most popular available products (int_products__popularity), so a customer
      with no history still gets a full list; every candidate also gets
      `tessera__recommendations_popularity_weight` times its 0-1 popularity, which breaks ties.
    `reason` says why, for the message: `viewed` when they looked at it themselves, else
    `bought_together` when a product they engaged with points to it, else `popular`.

    Never recommended: a product that is not available (inactive, or no variant in stock), or
    one the customer bought within `tessera__recommendations_exclude_bought_days`.

    Most customers (anonymous devices above all) have no recent interest and bought nothing
    lately: their candidates are the popular products alone, so their list is the same for all
    of them. It is ranked once (`popular_list`) and given to each of them, instead of scoring
    every customer against every popular product: the same rows, a fraction of the work.

    At a million customers there are about 150 million candidate rows (67 million customer and
    product pairs), so they are scored and ranked on integer keys (a customer's and a product's
    number in this run) and the names are joined back only for the products each customer keeps:
    on text keys the build ran out of 8 GB there.
-#}

{%- set weights = var('tessera__recommendations_weights') %}
{%- set per_customer = var('tessera__recommendations_per_customer') %}
{%- set popularity_weight = var('tessera__recommendations_popularity_weight') %}

with

customers as (

    select
        customer_id,
        row_number() over (order by customer_id) as customer_key
    from {{ ref('dim_customers') }}
    where identity_status in ('known', 'anonymous')

),

-- Every product numbered in name order, so that ordering by the number breaks ties by name.
products as (

    select
        product_id,
        title,
        price,
        category,
        is_available,
        row_number() over (order by product_id) as product_key
    from {{ ref('int_products__catalog') }}

),

catalog as (

    select * from products
    where is_available

),

interactions as (

    select
        customers.customer_key,
        interactions.*
    from {{ ref('int_products__customer_interactions') }} as interactions
    inner join customers on interactions.customer_id = customers.customer_id

),

recently_bought as (

    select
        interactions.customer_key,
        products.product_key
    from interactions
    inner join products on interactions.product_id = products.product_id
    where
        interactions.last_bought_at
        > {{ tessera_now() }} - to_days({{ var('tessera__recommendations_exclude_bought_days') }})

),

recent_interest as (

    select
        customer_key,
        product_id,
        view_events + add_events > 0 as was_browsed,
        {{ weights['view'] }} * weighted_views + {{ weights['add'] }} * weighted_adds as browse_score,
        {{ weights['view'] }} * weighted_views
        + {{ weights['add'] }} * weighted_adds
        + {{ weights['purchase'] }} * weighted_units_bought as interest
    from interactions
    where
        last_interaction_at
        > {{ tessera_now() }} - to_days({{ var('tessera__recommendations_lookback_days') }})

),

-- Reasons as numbers, the strongest highest: 2 viewed, 1 bought together, 0 popular.
viewed as (

    select
        recent_interest.customer_key,
        catalog.product_key,
        2 as reason_code,
        recent_interest.browse_score as score
    from recent_interest
    inner join catalog on recent_interest.product_id = catalog.product_id
    where recent_interest.was_browsed

),

bought_together as (

    -- One row per customer, product engaged with and product paired with it; `scored` adds
    -- them up with the customer's other candidates in one pass.
    select
        recent_interest.customer_key,
        catalog.product_key,
        1 as reason_code,
        recent_interest.interest * pairs.similarity as score
    from recent_interest
    inner join {{ ref('int_products__pairs') }} as pairs
        on recent_interest.product_id = pairs.product_id
    inner join catalog on pairs.paired_product_id = catalog.product_id
    where pairs.neighbour_rank <= {{ var('tessera__recommendations_neighbours') }}

),

popularity as (

    select
        products.product_key,
        popularity.popularity,
        popularity.popularity_rank
    from {{ ref('int_products__popularity') }} as popularity
    inner join products on popularity.product_id = products.product_id

),

top_available as (

    -- Enough popular products that a customer who bought several of them still gets a full list.
    select popularity.product_key
    from popularity
    inner join catalog on popularity.product_key = catalog.product_key
    qualify row_number() over (order by popularity.popularity_rank) <= {{ per_customer }} + 20

),

personal_customers as (

    -- Whoever has a candidate of their own, or a product to leave out of the popular ones.
    select customer_key from recent_interest
    union
    select customer_key from recently_bought

),

-- The popular products ranked once, as a customer with no candidates of their own gets them.
popular_list as (

    select
        top_available.product_key,
        cast(0.0 as double) + {{ popularity_weight }} * coalesce(popularity.popularity, 0) as score,
        row_number() over (
            order by
                cast(0.0 as double) + {{ popularity_weight }} * coalesce(popularity.popularity, 0) desc,
                top_available.product_key asc
        ) as recommendation_rank
    from top_available
    left join popularity on top_available.product_key = popularity.product_key

),

-- A customer with candidates of their own needs only as many popular products as can still
-- make their list: the first `per_customer` they did not just buy. Any popular product after
-- those scores no higher than each of them (a candidate's own score only adds), so it cannot.
popular_left_out as (

    select
        recently_bought.customer_key,
        count(*) as products
    from recently_bought
    inner join top_available on recently_bought.product_key = top_available.product_key
    group by recently_bought.customer_key

),

popular as (

    select
        personal_customers.customer_key,
        popular_list.product_key,
        0 as reason_code,
        0.0 as score
    from personal_customers
    left join popular_left_out on personal_customers.customer_key = popular_left_out.customer_key
    inner join popular_list
        on popular_list.recommendation_rank <= {{ per_customer }} + coalesce(popular_left_out.products, 0)

),

candidates as (

    select * from viewed
    union all
    select * from bought_together
    union all
    select * from popular

),

-- Grouped on one 64-bit number per customer and product (customer in the high 32 bits, product
-- in the low ones): the narrowest key for the largest aggregation of the build, over 100 million
-- candidates at a million customers. One key instead of two held 0.8 GiB less there.
summed as (

    select
        candidate_key // 4294967296 as customer_key,
        candidate_key % 4294967296 as product_key,
        score,
        reason_code
    from (
        select
            customer_key * 4294967296 + product_key as candidate_key,
            sum(score) as score,
            max(reason_code) as reason_code
        from candidates
        group by customer_key * 4294967296 + product_key
    ) as packed

),

scored as (

    select
        summed.customer_key,
        summed.product_key,
        summed.reason_code,
        summed.score + {{ popularity_weight }} * coalesce(popularity.popularity, 0) as score
    from summed
    left join popularity on summed.product_key = popularity.product_key
    anti join recently_bought
        on
            summed.customer_key = recently_bought.customer_key
            and summed.product_key = recently_bought.product_key

),

-- Each customer's best products, best first (score, then name). Only numbers are ranked,
-- which keeps the sort of every candidate of every customer narrow.
ranked as (

    select
        customer_key,
        product_key,
        reason_code,
        score,
        row_number() over (partition by customer_key order by score desc, product_key asc) as recommendation_rank
    from scored
    qualify recommendation_rank <= {{ per_customer }}

),

recommendations as (

    select
        customer_key,
        recommendation_rank,
        product_key,
        reason_code,
        score
    from ranked
    union all
    select
        customers.customer_key,
        popular_list.recommendation_rank,
        popular_list.product_key,
        0 as reason_code,
        popular_list.score
    from customers
    cross join popular_list
    anti join personal_customers on customers.customer_key = personal_customers.customer_key
    where popular_list.recommendation_rank <= {{ per_customer }}

)

select
    customers.customer_id,
    recommendations.recommendation_rank as rank,
    catalog.product_id,
    catalog.title,
    catalog.price,
    catalog.category,
    case recommendations.reason_code
        when 2 then 'viewed' when 1 then 'bought_together' else 'popular'
    end as reason,
    round(recommendations.score, 6) as score
from recommendations
inner join customers on recommendations.customer_key = customers.customer_key
inner join catalog on recommendations.product_key = catalog.product_key
