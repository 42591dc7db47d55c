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

    The per-checkout aggregation over every checkout event is int_traits__checkout_price_signals
    (incremental); this model applies the run's "now" to it and is rebuilt whole from compact
    tables: a checkout counts once it has been quiet for the hours above, and a checkout with
    events after "now" is counted from its events up to "now" only. A checkout's customer is
    that of its latest event (the greater customer id when two events share the moment).
-#}

{#-
    Recomputing checkouts from their events reads every checkout event, which is what the
    per-checkout table saves; a nightly run has no events after "now", so the run looks first and
    leaves the recomputation out when no checkout has any (macros/has_rows_after_now.sql).
-#}
{%- set recompute_later_checkouts = has_rows_after_now(
    ref('int_traits__checkout_price_signals'), 'last_activity_at'
) %}

with

checkout_signals as (

    select * from {{ ref('int_traits__checkout_price_signals') }}

),

{% if recompute_later_checkouts %}

    records as (

        select
            record_id,
            customer_id
        from {{ ref('int_identity__records') }}
        where customer_id is not null

    ),

    -- Checkouts with events after "now" (a run for an earlier day), from their events up to
    -- "now": the aggregation of int_traits__checkout_price_signals, which counts every event.
    recomputed as (

        select
            events.checkout_id,
            arg_max(
                coalesce(account_records.customer_id, device_records.customer_id),
                (events.occurred_at, coalesce(account_records.customer_id, device_records.customer_id))
            ) filter (
                where coalesce(account_records.customer_id, device_records.customer_id) is not null
            ) as customer_id,
            bool_or(
                events.event_name = 'Checkout Step Viewed'
                and events.step = 2
                and coalesce(events.shipping, 0) + coalesce(events.fees, 0) > 0
            ) as showed_extra_costs,
            bool_or(
                (events.event_name = 'Checkout Step Completed' and events.step >= 2)
                or events.event_name in ('Payment Info Entered', 'Order Completed')
            ) as passed_extra_costs,
            max(events.occurred_at) as last_activity_at
        from {{ ref('stg_mixpanel__events') }} as events
        left join records as account_records on account_records.record_id = 'storefront_account:' || events.user_id
        left join records as device_records on device_records.record_id = 'mixpanel_device:' || events.device_id
        where
            events.checkout_id in (
                select checkout_signals.checkout_id from checkout_signals
                where checkout_signals.last_activity_at > {{ tessera_now() }}
            )
            and events.occurred_at <= {{ tessera_now() }}
        group by events.checkout_id

    ),

{% endif %}

checkouts as (

    select
        checkout_id,
        customer_id,
        showed_extra_costs,
        passed_extra_costs,
        last_activity_at
    from checkout_signals
    where last_activity_at <= {{ tessera_now() }}

    {% if recompute_later_checkouts %}

        union all

        select
            checkout_id,
            customer_id,
            showed_extra_costs,
            passed_extra_costs,
            last_activity_at
        from recomputed

    {% endif %}

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
