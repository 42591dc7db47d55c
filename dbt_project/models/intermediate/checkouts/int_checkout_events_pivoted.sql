{#-
    One row per checkout the storefront tracked: its Mixpanel events (Checkout Started, Checkout
    Step Viewed / Completed, Payment Info Entered, Order Completed, and Signed In / Signed Up
    during checkout), which carry Shopify's checkout token as `checkout_id`, pivoted into the
    steps reached and what the shopper saw at each.

    "At start" values come from the Checkout Started event, or from the checkout's first event
    when Checkout Started has not arrived yet (a late event).

    Incremental: a checkout's row is rebuilt from all its events whenever one of them is
    received (Mixpanel's `processed_at`) after the newest event this table has seen, less
    `tessera__sessions_rebuild_margin_hours` for events received while the previous export ran
    (the same rule as int_device_sessions). Other checkouts are untouched, and a full refresh
    gives the same table.
-#}

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='checkout_token',
        on_schema_change='fail',
    )
}}

with

events as (

    select
        insert_id,
        checkout_id as checkout_token,
        device_id,
        user_id,
        event_name,
        -- The storefront sends the step's name; its number is the fallback.
        coalesce(
            step_name,
            case step when 1 then 'contact' when 2 then 'shipping' when 3 then 'payment' end
        ) as checkout_step,
        order_id,
        value as cart_value,
        products,
        shipping,
        tax,
        fees,
        total,
        guest_checkout_enabled,
        utm_source,
        utm_medium,
        device_type,
        occurred_at,
        coalesce(processed_at, occurred_at) as processed_at,
        -- Orders the events so that Checkout Started comes first, then time.
        (event_name <> 'Checkout Started', occurred_at, insert_id) as start_order
    from {{ ref('stg_mixpanel__events') }}
    where
        checkout_id is not null
        {% if is_incremental() %}
            and checkout_id in {{ mixpanel_keys_received_since_watermark('checkout_id') }}
        {% endif %}

)

select
    checkout_token,

    ----------  the shopper and the visit, at start
    arg_min(device_id, start_order) as device_id,
    arg_min_null(user_id, start_order) as user_id_at_start,
    arg_min(user_id is not null, start_order) as is_signed_in_at_start,
    -- The account the checkout ended under (a shopper may sign in or sign up on the way).
    arg_max(user_id, occurred_at) filter (where user_id is not null) as user_id,
    arg_min(guest_checkout_enabled, start_order) filter (
        where guest_checkout_enabled is not null
    ) as is_guest_checkout_enabled,
    arg_min(utm_source, start_order) as utm_source,
    arg_min(utm_medium, start_order) as utm_medium,
    arg_min(device_type, start_order) as device_type,

    ----------  the cart at start
    arg_min(cart_value, start_order) filter (where event_name = 'Checkout Started') as cart_value,
    arg_min(products, start_order) filter (
        where event_name in ('Checkout Started', 'Order Completed') and products is not null
    ) as cart_products,

    ----------  steps reached
    bool_or(event_name = 'Checkout Started') as has_started,
    bool_or(event_name = 'Checkout Step Viewed' and checkout_step = 'contact') as has_viewed_contact,
    bool_or(event_name = 'Checkout Step Completed' and checkout_step = 'contact') as has_completed_contact,
    bool_or(event_name = 'Checkout Step Viewed' and checkout_step = 'shipping') as has_viewed_shipping,
    bool_or(event_name = 'Checkout Step Completed' and checkout_step = 'shipping') as has_completed_shipping,
    bool_or(event_name = 'Checkout Step Viewed' and checkout_step = 'payment') as has_viewed_payment,
    bool_or(event_name = 'Payment Info Entered') as has_entered_payment_info,
    bool_or(event_name = 'Checkout Step Completed' and checkout_step = 'payment') as has_completed_payment,
    bool_or(event_name = 'Order Completed') as has_order_completed,
    bool_or(event_name in ('Signed In', 'Signed Up')) as has_signed_in_during_checkout,
    bool_or(event_name = 'Signed Up') as has_signed_up_during_checkout,

    ----------  costs shown when the shipping step opened: shipping, tax and fees first appear there
    arg_min(shipping, occurred_at) filter (
        where event_name = 'Checkout Step Viewed' and checkout_step = 'shipping'
    ) as shipping_shown,
    arg_min(tax, occurred_at) filter (
        where event_name = 'Checkout Step Viewed' and checkout_step = 'shipping'
    ) as tax_shown,
    arg_min(fees, occurred_at) filter (
        where event_name = 'Checkout Step Viewed' and checkout_step = 'shipping'
    ) as fees_shown,
    arg_min(total, occurred_at) filter (
        where event_name = 'Checkout Step Viewed' and checkout_step = 'shipping'
    ) as total_shown,

    ----------  the order
    arg_min(order_id, occurred_at) filter (where event_name = 'Order Completed') as order_id,

    ----------  timestamps
    min(occurred_at) filter (where event_name = 'Checkout Started') as started_at,
    min(occurred_at) as first_event_at,
    max(occurred_at) as last_event_at,
    min(occurred_at) filter (where event_name = 'Order Completed') as order_completed_at,
    -- When Mixpanel received the checkout's newest event: where the next incremental run starts.
    max(processed_at) as last_processed_at
from events
group by checkout_token
