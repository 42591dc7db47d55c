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
-#}

{%- set weights = var('tessera__recommendations_weights') %}
{%- set per_customer = var('tessera__recommendations_per_customer') %}

with

customers as (

    select customer_id from {{ ref('dim_customers') }}
    where identity_status in ('known', 'anonymous')

),

catalog as (

    select * from {{ ref('int_products__catalog') }}
    where is_available

),

interactions as (

    select * from {{ ref('int_products__customer_interactions') }}

),

recently_bought as (

    select
        customer_id,
        product_id
    from interactions
    where
        last_bought_at
        > {{ tessera_now() }} - to_days({{ var('tessera__recommendations_exclude_bought_days') }})

),

recent_interest as (

    select
        customer_id,
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

viewed as (

    select
        customer_id,
        product_id,
        'viewed' as reason,
        browse_score as score
    from recent_interest
    where was_browsed

),

bought_together as (

    -- One row per customer, product engaged with and product paired with it; `scored` adds
    -- them up with the customer's other candidates in one pass.
    select
        recent_interest.customer_id,
        pairs.paired_product_id as product_id,
        'bought_together' as reason,
        recent_interest.interest * pairs.similarity as score
    from recent_interest
    inner join {{ ref('int_products__pairs') }} as pairs
        on recent_interest.product_id = pairs.product_id
    where pairs.neighbour_rank <= {{ var('tessera__recommendations_neighbours') }}

),

popularity as (

    select * from {{ ref('int_products__popularity') }}

),

top_available as (

    -- Enough popular products that a customer who bought several of them still gets a full list.
    select popularity.product_id
    from popularity
    inner join catalog on popularity.product_id = catalog.product_id
    qualify row_number() over (order by popularity.popularity_rank) <= {{ per_customer }} + 20

),

personal_customers as (

    -- Whoever has a candidate of their own, or a product to leave out of the popular ones.
    select customer_id from recent_interest
    union
    select customer_id from recently_bought

),

-- The popular products ranked once, as a customer with no candidates of their own gets them.
popular_list as (

    select
        top_available.product_id,
        'popular' as reason,
        cast(0.0 as double)
        + {{ var('tessera__recommendations_popularity_weight') }} * coalesce(popularity.popularity, 0) as score,
        row_number() over (
            order by
                cast(0.0 as double)
                + {{ var('tessera__recommendations_popularity_weight') }} * coalesce(popularity.popularity, 0) desc,
                top_available.product_id asc
        ) as recommendation_rank
    from top_available
    left join popularity on top_available.product_id = popularity.product_id

),

-- A customer with candidates of their own needs only as many popular products as can still
-- make their list: the first `per_customer` they did not just buy. Any popular product after
-- those scores no higher than each of them (a candidate's own score only adds), so it cannot.
popular_left_out as (

    select
        recently_bought.customer_id,
        count(*) as products
    from recently_bought
    inner join top_available on recently_bought.product_id = top_available.product_id
    group by recently_bought.customer_id

),

popular as (

    select
        personal_customers.customer_id,
        popular_list.product_id,
        'popular' as reason,
        0.0 as score
    from personal_customers
    left join popular_left_out on personal_customers.customer_id = popular_left_out.customer_id
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

scored as (

    select
        candidates.customer_id,
        candidates.product_id,
        sum(candidates.score)
        + {{ var('tessera__recommendations_popularity_weight') }} * any_value(coalesce(popularity.popularity, 0))
            as score,
        case
            when bool_or(candidates.reason = 'viewed') then 'viewed'
            when bool_or(candidates.reason = 'bought_together') then 'bought_together'
            else 'popular'
        end as reason
    from candidates
    inner join customers on candidates.customer_id = customers.customer_id
    inner join catalog on candidates.product_id = catalog.product_id
    left join popularity on candidates.product_id = popularity.product_id
    left join recently_bought
        on
            candidates.customer_id = recently_bought.customer_id
            and candidates.product_id = recently_bought.product_id
    where recently_bought.product_id is null
    group by candidates.customer_id, candidates.product_id

),

-- Products in name order, so that the best-first pick below breaks ties on score by name.
product_order as (

    select
        product_id,
        row_number() over (order by product_id) as ordinal
    from catalog

),

-- Each customer's best products, best first (score, then name): a top-N per customer instead
-- of a window that sorts every candidate of every customer.
best as (

    select
        scored.customer_id,
        max_by(
            { 'product_id': scored.product_id, 'reason': scored.reason, 'score': scored.score },
            { 'score': scored.score, 'name_order': -product_order.ordinal },
            {{ per_customer }}
        ) as products
    from scored
    inner join product_order on scored.product_id = product_order.product_id
    group by scored.customer_id

),

picks as (

    select
        customer_id,
        generate_subscripts(products, 1) as recommendation_rank,
        unnest(products) as pick
    from best

),

ranked as (

    select
        picks.customer_id,
        picks.recommendation_rank,
        picks.pick.product_id,
        picks.pick.reason,
        picks.pick.score
    from picks

),

recommendations as (

    select
        customer_id,
        recommendation_rank,
        product_id,
        reason,
        score
    from ranked
    union all
    select
        customers.customer_id,
        popular_list.recommendation_rank,
        popular_list.product_id,
        popular_list.reason,
        popular_list.score
    from customers
    cross join popular_list
    left join personal_customers on customers.customer_id = personal_customers.customer_id
    where
        popular_list.recommendation_rank <= {{ per_customer }}
        and personal_customers.customer_id is null

)

select
    recommendations.customer_id,
    recommendations.recommendation_rank as rank,
    recommendations.product_id,
    catalog.title,
    catalog.price,
    catalog.category,
    recommendations.reason,
    round(recommendations.score, 6) as score
from recommendations
inner join catalog on recommendations.product_id = catalog.product_id
