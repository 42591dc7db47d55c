{#-
    What each customer did with each product, up to the run's "now": storefront views and
    adds to cart (Mixpanel), and purchases (Shopify order line items, test and cancelled orders
    left out). One row per customer and product.

    - The customer of an analytics event is the customer of its logged-in storefront account
      when there is one, else of its device (a shared family device is a customer of its own).
      Events and orders that belong to nobody (all identifiers blocked) are left out: there is
      no one to recommend to.
    - `weighted_*` columns decay each interaction by its age with a half-life of
      `tessera__recommendations_half_life_days`, so last week's browsing counts more than last
      quarter's.
-#}

with

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where customer_id is not null

),

product_events as (

    select
        coalesce(account_records.customer_id, device_records.customer_id) as customer_id,
        events.product_id,
        case events.event_name when 'Product Viewed' then 'view' else 'add' end as interaction,
        events.occurred_at,
        1 as units
    from {{ ref('stg_mixpanel__events') }} as events
    left join records as account_records on account_records.record_id = 'storefront_account:' || events.user_id
    left join records as device_records on device_records.record_id = 'mixpanel_device:' || events.device_id
    where
        events.event_name in ('Product Viewed', 'Product Added')
        and events.product_id is not null
        and events.occurred_at <= {{ tessera_now() }}

),

purchases as (

    select
        records.customer_id,
        line_items.product_id,
        'purchase' as interaction,
        orders.created_at as occurred_at,
        line_items.quantity as units
    from {{ ref('stg_shopify__order_line_items') }} as line_items
    inner join {{ ref('stg_shopify__orders') }} as orders on line_items.order_id = orders.order_id
    inner join records on records.record_id = 'shopify_order:' || orders.order_id
    where
        not orders.is_test
        and orders.cancelled_at is null
        and orders.created_at <= {{ tessera_now() }}
        and line_items.product_id is not null
        and not coalesce(line_items.is_gift_card, false)

),

attributed as (

    select * from product_events
    where customer_id is not null
    union all
    select * from purchases

),

interactions as (

    select
        *,
        -- exp(-ln 2 * age / half-life): 1 now, 0.5 one half-life ago.
        exp(
            -ln(2) * (epoch({{ tessera_now() }}) - epoch(occurred_at)) / 86400.0
            / {{ var('tessera__recommendations_half_life_days') }}
        ) as decay
    from attributed

)

select
    customer_id,
    product_id,
    count(*) filter (where interaction = 'view') as view_events,
    count(*) filter (where interaction = 'add') as add_events,
    coalesce(sum(units) filter (where interaction = 'purchase'), 0) as units_bought,
    count(*) filter (where interaction = 'purchase') as purchases,
    coalesce(sum(decay) filter (where interaction = 'view'), 0) as weighted_views,
    coalesce(sum(decay) filter (where interaction = 'add'), 0) as weighted_adds,
    coalesce(sum(decay * units) filter (where interaction = 'purchase'), 0) as weighted_units_bought,
    max(occurred_at) filter (where interaction = 'view') as last_viewed_at,
    max(occurred_at) filter (where interaction = 'add') as last_added_at,
    max(occurred_at) filter (where interaction = 'purchase') as last_bought_at,
    max(occurred_at) as last_interaction_at
from interactions
group by customer_id, product_id
