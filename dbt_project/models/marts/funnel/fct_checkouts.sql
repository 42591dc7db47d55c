{#-
    One row per checkout, keyed by Shopify's checkout token: the id the storefront, Mixpanel
    (`checkout_id` on checkout events) and the order (`checkout_token`) share. Shopify's numeric
    `checkout_id` exists only for checkouts Shopify lists as abandoned (an email was typed and
    no order followed), so it is carried but is not the key.

    Sources, each filling what the others miss: the storefront's checkout events (every
    checkout, the steps, what was shown), Shopify's abandoned checkouts (email typed, cart
    saved), and orders (completion: the order is the proof, late events or not).

    Steps, in order: contact, shipping (shipping, tax and fees are first shown), payment, and
    completed. The furthest step is the furthest any source proves: an event of the step or of
    a later one, an abandoned checkout in Shopify (the contact step was completed, so shipping
    was reached), an order (completed). So one late event does not pull a checkout back a step.
-#}

with

tracked as (

    select * from {{ ref('int_checkout_events_pivoted') }}

),

shopify_checkouts as (

    -- One per token; should Shopify ever list a token twice, its latest state.
    select * from {{ ref('stg_shopify__checkouts') }}
    qualify row_number() over (partition by checkout_token order by updated_at desc, checkout_id desc) = 1

),

orders as (

    select * from {{ ref('stg_shopify__orders') }}
    where checkout_token is not null and not is_test
    qualify row_number() over (partition by checkout_token order by created_at, order_id) = 1

),

lines as (

    select
        checkout_token,
        count(*) as line_items,
        sum(quantity) as items,
        sum(line_value) as line_items_value
    from {{ ref('int_checkout_line_items_unioned') }}
    group by checkout_token

),

tokens as (

    select checkout_token from tracked
    union
    select checkout_token from shopify_checkouts
    union
    select checkout_token from orders

),

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where customer_id is not null

),

customer_orders as (

    -- When each customer first ordered, under any of their identities.
    select
        records.customer_id,
        min(all_orders.created_at) as first_order_at
    from {{ ref('stg_shopify__orders') }} as all_orders
    inner join records on 'shopify_order:' || all_orders.order_id = records.record_id
    where not all_orders.is_test
    group by records.customer_id

),

sessions as (

    select * from {{ ref('int_device_sessions') }}

),

guest_checkout_settings as (

    -- Guest checkout is a shop-wide setting: each tracked checkout reports it as it was then.
    select
        started_at as reported_at,
        is_guest_checkout_enabled
    from tracked
    where started_at is not null and is_guest_checkout_enabled is not null

),

joined as (

    select
        tokens.checkout_token,
        shopify_checkouts.checkout_id,
        -- The person behind the checkout: the order's, else the abandoned checkout's (a typed
        -- email), else the account signed in, else the device's.
        coalesce(
            order_records.customer_id,
            checkout_records.customer_id,
            account_records.customer_id,
            device_records.customer_id
        ) as customer_id,
        tracked.device_id,
        coalesce(orders.order_id, tracked.order_id) as order_id,
        least(tracked.started_at, tracked.first_event_at, shopify_checkouts.created_at, orders.created_at)
            as started_at,
        coalesce(orders.created_at, tracked.order_completed_at) as completed_at,
        greatest(tracked.last_event_at, shopify_checkouts.updated_at, orders.created_at) as last_activity_at,
        coalesce(orders.subtotal_price, shopify_checkouts.subtotal_price, tracked.cart_value, lines.line_items_value)
            as cart_value,
        coalesce(lines.items, 0) as items,
        coalesce(lines.line_items, 0) as line_items,
        tracked.device_type,
        tracked.utm_source,
        tracked.utm_medium,
        tracked.is_guest_checkout_enabled,
        coalesce(tracked.is_signed_in_at_start, false) as is_signed_in_at_start,
        coalesce(tracked.has_signed_in_during_checkout, false) as has_signed_in_during_checkout,
        coalesce(tracked.has_signed_up_during_checkout, false) as has_signed_up_during_checkout,
        tracked.shipping_shown,
        tracked.tax_shown,
        tracked.fees_shown,
        tracked.total_shown,
        coalesce(tracked.has_entered_payment_info, false) as has_entered_payment_info,
        orders.order_id is not null or coalesce(tracked.has_order_completed, false) as is_completed,
        coalesce(
            tracked.has_completed_shipping or tracked.has_viewed_payment
            or tracked.has_entered_payment_info or tracked.has_completed_payment,
            false
        ) as has_reached_payment,
        coalesce(tracked.has_completed_contact or tracked.has_viewed_shipping, false)
        or shopify_checkouts.checkout_id is not null as has_reached_shipping,
        shopify_checkouts.recovery_url,
        tracked.checkout_token is not null as is_tracked
    from tokens
    left join tracked on tokens.checkout_token = tracked.checkout_token
    left join shopify_checkouts on tokens.checkout_token = shopify_checkouts.checkout_token
    left join orders on tokens.checkout_token = orders.checkout_token
    left join lines on tokens.checkout_token = lines.checkout_token
    left join records as order_records on 'shopify_order:' || orders.order_id = order_records.record_id
    left join records as checkout_records
        on 'shopify_checkout:' || shopify_checkouts.checkout_id = checkout_records.record_id
    left join records as account_records on 'storefront_account:' || tracked.user_id = account_records.record_id
    left join records as device_records on 'mixpanel_device:' || tracked.device_id = device_records.record_id

),

stepped as (

    select
        *,
        case
            when is_completed then 'completed'
            when has_reached_payment then 'payment'
            when has_reached_shipping then 'shipping'
            else 'contact'
        end as furthest_step
    from joined

)

select
    stepped.checkout_token,
    stepped.checkout_id,
    stepped.customer_id,
    stepped.order_id,
    sessions.session_id,
    stepped.device_id,
    stepped.started_at,
    stepped.furthest_step,
    case stepped.furthest_step
        when 'contact' then 1 when 'shipping' then 2 when 'payment' then 3 when 'completed' then 4
    end as furthest_step_number,
    stepped.is_completed,
    stepped.completed_at,
    case when not stepped.is_completed then stepped.furthest_step end as exit_step,
    stepped.last_activity_at,
    stepped.cart_value,
    stepped.items,
    stepped.line_items,
    coalesce(stepped.device_type, sessions.device_type) as device_type,
    coalesce(sessions.channel, 'unknown') as channel,
    coalesce(sessions.landing_utm_source, stepped.utm_source) as utm_source,
    coalesce(sessions.landing_utm_medium, stepped.utm_medium) as utm_medium,
    case
        when customer_orders.first_order_at < stepped.started_at then 'returning' else 'new'
    end as customer_type,
    -- When the checkout's own Checkout Started has not arrived, the setting the shop last reported.
    coalesce(stepped.is_guest_checkout_enabled, shop_setting.is_guest_checkout_enabled) as is_guest_checkout_available,
    stepped.is_signed_in_at_start,
    -- Guest checkout was off and the shopper was not signed in: they had to sign in or create an account.
    coalesce(
        not coalesce(stepped.is_guest_checkout_enabled, shop_setting.is_guest_checkout_enabled)
        and not stepped.is_signed_in_at_start,
        false
    ) as has_faced_account_wall,
    stepped.has_signed_in_during_checkout,
    stepped.has_signed_up_during_checkout,
    stepped.shipping_shown,
    stepped.tax_shown,
    stepped.fees_shown,
    stepped.total_shown,
    coalesce(stepped.shipping_shown, 0) + coalesce(stepped.tax_shown, 0) + coalesce(stepped.fees_shown, 0)
        as extra_costs_shown,
    stepped.has_entered_payment_info,
    stepped.recovery_url,
    stepped.is_tracked
from stepped
left join customer_orders on stepped.customer_id = customer_orders.customer_id
left join sessions
    on
        stepped.device_id = sessions.device_id
        and stepped.started_at between sessions.started_at and sessions.ended_at
asof left join guest_checkout_settings as shop_setting on stepped.started_at >= shop_setting.reported_at
