{#-
    Where each buying customer stands, as of the run's "now".

    Expected inter-order interval (days), shrunk towards the population:
        (prior * k + order_span_days) / (k + orders - 1)
    where order_span_days / (orders - 1) is the customer's own mean interval and k is
    `tessera__order_interval_prior_weight` (how many intervals the prior is worth). The prior is
    the shop's repurchase window: the median mean interval of repeat buyers, but never under
    `tessera__order_interval_min_days` (a young shop or a short history only sees the quick
    reorders, which would make everyone look overdue), and `tessera__order_interval_prior_days`
    while fewer than `tessera__order_interval_min_repeat_buyers` customers have reordered. A
    one-order customer gets the prior, a frequent buyer mostly their own rhythm.
    - predicted_next_order_at = last order + expected interval.
    - churn_risk = days since the last order / expected interval: 1 means the next order is due
      now, 2 that it is a full interval overdue.

    Lifecycle, the first rule that matches:
    1. `lapsed`: churn_risk >= `tessera__lapsed_churn_risk`, or no order for
       `tessera__lapsed_days`;
    2. `at_risk`: churn_risk >= `tessera__at_risk_churn_risk` (a VIP overdue is at risk first:
       that is what a marketer must act on);
    3. `vip`: at least `tessera__vip_min_orders` orders or `tessera__vip_min_revenue` spent;
    4. `new`: first order within `tessera__new_customer_days`;
    5. `active`: everyone else who buys on rhythm.
    Customers who never ordered are `prospect` (customer_traits).

    Purchase trend, orders in the last `tessera__purchase_trend_days` (recent) against the same
    span before (prior): `new` when every order is recent, `growing` recent > prior, `declining`
    recent < prior, `steady` equal and above zero, `dormant` no order in either span.
-#}

with

history as (

    select * from {{ ref('int_traits__order_history') }}

),

population_prior as (

    select
        case
            when count(*) >= {{ var('tessera__order_interval_min_repeat_buyers') }}
                then greatest(median(order_span_days / (orders - 1)), {{ var('tessera__order_interval_min_days') }})
            else {{ var('tessera__order_interval_prior_days') }}
        end as prior_interval_days
    from history
    where orders >= 2

),

expected as (

    select
        history.*,
        (
            population_prior.prior_interval_days * {{ var('tessera__order_interval_prior_weight') }}
            + history.order_span_days
        )
        / ({{ var('tessera__order_interval_prior_weight') }} + history.orders - 1) as expected_order_interval_days
    from history
    cross join population_prior

),

risk as (

    select
        *,
        days_since_last_order / nullif(expected_order_interval_days, 0) as churn_risk
    from expected

)

select
    customer_id,
    expected_order_interval_days,
    last_order_at
    + to_seconds(cast(round(expected_order_interval_days * 86400) as bigint)) as predicted_next_order_at,
    churn_risk,
    case
        when
            churn_risk >= {{ var('tessera__lapsed_churn_risk') }}
            or days_since_last_order >= {{ var('tessera__lapsed_days') }}
            then 'lapsed'
        when churn_risk >= {{ var('tessera__at_risk_churn_risk') }} then 'at_risk'
        when
            orders >= {{ var('tessera__vip_min_orders') }}
            or revenue >= {{ var('tessera__vip_min_revenue') }}
            then 'vip'
        when first_order_at > {{ tessera_now() }} - to_days({{ var('tessera__new_customer_days') }}) then 'new'
        else 'active'
    end as lifecycle,
    case
        when recent_orders = orders then 'new'
        when recent_orders > prior_orders then 'growing'
        when recent_orders < prior_orders then 'declining'
        when recent_orders > 0 then 'steady'
        else 'dormant'
    end as purchase_trend
from risk
