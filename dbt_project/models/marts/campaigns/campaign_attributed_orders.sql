{#-
    Orders credited to an email campaign, last touch: an order counts for a campaign when the
    same resolved customer clicked it, or else opened it, at most `tessera__attribution_days`
    before ordering (an order before the touch never counts). Clicks beat opens (a click is
    intent, an open may be the mail client's preview); among touches of the same kind, the
    latest wins. Each order is credited to at most one campaign; revenue is the order's total.
-#}

with

touches as (

    select
        platform,
        campaign_id,
        customer_id,
        interaction as touch,
        occurred_at as touched_at
    from {{ ref('campaign_interactions') }}
    where
        interaction in ('open', 'click')
        and customer_id is not null
        and campaign_id is not null

),

orders as (

    select * from {{ ref('int_traits__orders') }}

),

candidates as (

    select
        orders.order_id,
        orders.customer_id,
        touches.platform,
        touches.campaign_id,
        touches.touch,
        touches.touched_at,
        orders.ordered_at,
        orders.total_price
    from orders
    inner join touches
        on
            orders.customer_id = touches.customer_id
            and orders.ordered_at > touches.touched_at
            and orders.ordered_at <= touches.touched_at + to_days({{ var('tessera__attribution_days') }})

)

select
    order_id,
    customer_id,
    platform,
    campaign_id,
    touch,
    touched_at,
    ordered_at,
    (epoch(ordered_at) - epoch(touched_at)) / 86400.0 as days_to_order,
    total_price as revenue
from candidates
qualify row_number() over (
    partition by order_id
    order by touch = 'click' desc, touched_at desc, campaign_id asc
) = 1
