{#-
    How much price drives each customer's decisions, from two behaviours:
    - orders placed with a discount (int_traits__orders.has_discount);
    - checkouts left at the moment extra costs (shipping, fees) appeared: the checkout showed a
      shipping step with shipping or fees above zero, never got past it, and has been quiet for
      `tessera__abandon_after_hours` (so one still in progress does not count).

    price_sensitivity_score = (discounted orders + extra-cost exits) / (orders + extra-cost
    exits): the share of the customer's buy-or-leave decisions that price decided.

    discount_sensitivity, first match: `unknown` with no orders and no such exit; `high` at a
    score of at least `tessera__discount_sensitivity_high_share` over at least
    `tessera__discount_sensitivity_high_min_signals` price-driven decisions (one exit alone is not
    a habit); `medium` at a score of at least `tessera__discount_sensitivity_medium_share`;
    `low` otherwise.
-#}

with

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where customer_id is not null

),

checkout_events as (

    select
        coalesce(account_records.customer_id, device_records.customer_id) as customer_id,
        events.checkout_id,
        events.event_name,
        events.step,
        coalesce(events.shipping, 0) + coalesce(events.fees, 0) as extra_costs,
        events.occurred_at
    from {{ ref('stg_mixpanel__events') }} as events
    left join records as account_records on account_records.record_id = 'storefront_account:' || events.user_id
    left join records as device_records on device_records.record_id = 'mixpanel_device:' || events.device_id
    where
        events.checkout_id is not null
        and events.occurred_at <= {{ tessera_now() }}

),

checkouts as (

    select
        checkout_id,
        -- The latest event's customer: a shopper who logs in mid-checkout is known from then on.
        arg_max(customer_id, occurred_at) filter (where customer_id is not null) as customer_id,
        bool_or(event_name = 'Checkout Step Viewed' and step = 2 and extra_costs > 0) as showed_extra_costs,
        bool_or(
            (event_name = 'Checkout Step Completed' and step >= 2)
            or event_name in ('Payment Info Entered', 'Order Completed')
        ) as passed_extra_costs,
        max(occurred_at) as last_activity_at
    from checkout_events
    group by checkout_id

),

exits as (

    select
        customer_id,
        count(*) as extra_cost_exits
    from checkouts
    where
        customer_id is not null
        and showed_extra_costs
        and not passed_extra_costs
        and last_activity_at <= {{ tessera_now() }} - to_hours({{ var('tessera__abandon_after_hours') }})
    group by customer_id

),

history as (

    select * from {{ ref('int_traits__order_history') }}

),

signals as (

    select
        coalesce(history.customer_id, exits.customer_id) as customer_id,
        coalesce(history.orders, 0) as orders,
        coalesce(history.discounted_orders, 0) as discounted_orders,
        coalesce(exits.extra_cost_exits, 0) as extra_cost_exits
    from history
    full outer join exits on history.customer_id = exits.customer_id

),

scored as (

    select
        *,
        discounted_orders / nullif(orders, 0) as discount_order_share,
        (discounted_orders + extra_cost_exits) / nullif(orders + extra_cost_exits, 0) as price_sensitivity_score
    from signals

)

select
    customer_id,
    orders,
    discounted_orders,
    discount_order_share,
    extra_cost_exits,
    price_sensitivity_score,
    case
        when price_sensitivity_score is null then 'unknown'
        when
            price_sensitivity_score >= {{ var('tessera__discount_sensitivity_high_share') }}
            and discounted_orders + extra_cost_exits >= {{ var('tessera__discount_sensitivity_high_min_signals') }}
            then 'high'
        when price_sensitivity_score >= {{ var('tessera__discount_sensitivity_medium_share') }} then 'medium'
        else 'low'
    end as discount_sensitivity
from scored
