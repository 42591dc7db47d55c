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

    Incremental: a run deletes and rebuilds whole the row of every checkout whose inputs may
    have changed since the table was last built, and leaves the others. Nothing here reads
    "now", so a row changes only when an input does. A checkout's row depends on:
    - its checkout events (int_checkout_events_pivoted) and the sessions of its device
      (int_device_sessions): rebuilt when either has a row received by Mixpanel after the
      newest receipt the last build had read, less `tessera__sessions_rebuild_margin_hours`
      (the rule those incremental models rebuild by);
    - its Shopify abandoned checkout and order, and their line items, which Shopify updates in
      place (completed later, edited): rebuilt when dlt loaded a row of them after the last
      build (`_dlt_load_id`, which dlt stamps on the order or checkout and which covers the
      line items loaded with it), under the token the row has now and the one this table holds;
    - its line items (int_checkout_line_items_unioned), which come from those same sources;
      the catalog only names their variants and titles, which this table does not read;
    - the customer (identity merges and splits move records between customers) and whether
      that customer had ordered before (customer_type): every run recomputes both for every
      checkout, one join, and rebuilds the rows where either differs from the existing one, so a
      checkout whose customer merged away or split off is rebuilt, whatever moved it;
    - the shop's guest-checkout setting reported by the latest earlier checkout, for a checkout
      whose own Checkout Started has not arrived: such checkouts (a handful) are rebuilt every
      run.
    The receipt watermarks are recorded after each build (macros/checkout_watermarks.sql), as
    the table's columns are the mart's contract. Rows are rebuilt from all of their inputs, by
    the same query a full refresh runs, so the table equals a full refresh. A checkout erased
    for privacy has no input left, so it does not come back.
-#}
-- depends_on: {{ source('shopify', 'abandoned_checkouts') }}
-- depends_on: {{ source('shopify', 'orders') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='checkout_token',
        on_schema_change='fail',
        post_hook="{{ save_checkout_watermarks() }}",
    )
}}

with

all_tracked as (

    select * from {{ ref('int_checkout_events_pivoted') }}

),

all_shopify_checkouts as (

    -- One per token; should Shopify ever list a token twice, its latest state.
    select * from {{ ref('stg_shopify__checkouts') }}
    qualify row_number() over (partition by checkout_token order by updated_at desc, checkout_id desc) = 1

),

all_orders as (

    select * from {{ ref('stg_shopify__orders') }}
    where checkout_token is not null and not is_test
    qualify row_number() over (partition by checkout_token order by created_at, order_id) = 1

),

all_lines as (

    select * from {{ ref('int_checkout_line_items_unioned') }}

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
        min(orders_placed.created_at) as first_order_at
    from {{ ref('stg_shopify__orders') }} as orders_placed
    inner join records on 'shopify_order:' || orders_placed.order_id = records.record_id
    where not orders_placed.is_test
    group by records.customer_id

),

customer_candidates as (

    -- The records that name a checkout's customer, in the order the row prefers them.
    select
        checkout_token,
        1 as preference,
        'shopify_order:' || order_id as record_id
    from all_orders
    union all
    select
        checkout_token,
        2 as preference,
        'shopify_checkout:' || checkout_id as record_id
    from all_shopify_checkouts
    union all
    select
        checkout_token,
        3 as preference,
        'storefront_account:' || user_id as record_id
    from all_tracked
    where user_id is not null
    union all
    select
        checkout_token,
        4 as preference,
        'mixpanel_device:' || device_id as record_id
    from all_tracked
    where device_id is not null

),

customers as (

    -- The person behind each checkout: the order's, else the abandoned checkout's (a typed
    -- email), else the account signed in, else the device's; the first that has a customer.
    select
        customer_candidates.checkout_token,
        arg_min(records.customer_id, customer_candidates.preference) as customer_id
    from customer_candidates
    inner join records on customer_candidates.record_id = records.record_id
    group by customer_candidates.checkout_token

),

sessions as (

    select * from {{ ref('int_device_sessions') }}

),

{% if is_incremental() %}

    watermarks as (

        {{ checkout_watermarks() }}

    ),

    received as (

        -- Checkouts with an event Mixpanel received since.
        select checkout_token from all_tracked
        where last_processed_at > (select watermarks.mixpanel_received_after from watermarks)
        union
        -- Checkouts that started in a session with an event received since. A session only
        -- changes by taking in events (they extend it, start it earlier or merge it with the
        -- next), so a checkout's session is unchanged unless the one it starts in now has one.
        select built.checkout_token
        from {{ this }} as built
        inner join sessions
            on
                built.device_id = sessions.device_id
                and built.started_at between sessions.started_at and sessions.ended_at
        where sessions.last_processed_at > (select watermarks.mixpanel_received_after from watermarks)

    ),

    loaded_checkouts as (

        -- dlt stamps the parent row; a checkout's line items are loaded with it.
        select cast(id as varchar) as checkout_id
        from {{ source('shopify', 'abandoned_checkouts') }}
        where cast(_dlt_load_id as double) > (select watermarks.shopify_loaded_after from watermarks)

    ),

    loaded_orders as (

        select cast(id as varchar) as order_id
        from {{ source('shopify', 'orders') }}
        where cast(_dlt_load_id as double) > (select watermarks.shopify_loaded_after from watermarks)

    ),

    loaded as (

        -- Shopify rows loaded since: under the token they have now, and the one this table holds.
        select checkout_token from {{ ref('stg_shopify__checkouts') }}
        where checkout_id in (select loaded_checkouts.checkout_id from loaded_checkouts)
        union
        select checkout_token from {{ ref('stg_shopify__orders') }}
        where checkout_token is not null and order_id in (select loaded_orders.order_id from loaded_orders)
        union
        select checkout_token from {{ this }}
        where
            checkout_id in (select loaded_checkouts.checkout_id from loaded_checkouts)
            or order_id in (select loaded_orders.order_id from loaded_orders)

    ),

    moved as (

        -- Checkouts whose customer, or whether that customer had ordered before, is not what
        -- this table holds: identity moved a record, or an order changed the customer's first.
        select built.checkout_token
        from {{ this }} as built
        left join customers on built.checkout_token = customers.checkout_token
        left join customer_orders on customers.customer_id = customer_orders.customer_id
        where
            built.customer_id is distinct from customers.customer_id
            or built.customer_type
            <> case when customer_orders.first_order_at < built.started_at then 'returning' else 'new' end

    ),

    without_own_setting as (

        -- Checkouts that take the shop's setting from the latest earlier checkout.
        select built.checkout_token
        from {{ this }} as built
        left join all_tracked on built.checkout_token = all_tracked.checkout_token
        where all_tracked.is_guest_checkout_enabled is null

    ),

    changed as materialized (

        select checkout_token from received
        union
        select checkout_token from loaded
        union
        select checkout_token from moved
        union
        select checkout_token from without_own_setting

    ),

{% endif %}

tracked as (

    select * from all_tracked
    {% if is_incremental() %}
        where checkout_token in (select changed.checkout_token from changed)
    {% endif %}

),

shopify_checkouts as (

    select * from all_shopify_checkouts
    {% if is_incremental() %}
        where checkout_token in (select changed.checkout_token from changed)
    {% endif %}

),

orders as (

    select * from all_orders
    {% if is_incremental() %}
        where checkout_token in (select changed.checkout_token from changed)
    {% endif %}

),

lines as (

    select
        checkout_token,
        count(*) as line_items,
        sum(quantity) as items,
        sum(line_value) as line_items_value
    from all_lines
    {% if is_incremental() %}
        where checkout_token in (select changed.checkout_token from changed)
    {% endif %}
    group by checkout_token

),

tokens as (

    select checkout_token from tracked
    union
    select checkout_token from shopify_checkouts
    union
    select checkout_token from orders

),

guest_checkout_settings as (

    -- Guest checkout is a shop-wide setting: each tracked checkout reports it as it was then.
    select
        started_at as reported_at,
        is_guest_checkout_enabled
    from all_tracked
    where started_at is not null and is_guest_checkout_enabled is not null

),

checkout_sessions as (

    select * from sessions
    {% if is_incremental() %}
        where device_id in (select tracked.device_id from tracked)
    {% endif %}

),

joined as (

    select
        tokens.checkout_token,
        shopify_checkouts.checkout_id,
        customers.customer_id,
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
    left join customers on tokens.checkout_token = customers.checkout_token

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
left join checkout_sessions as sessions
    on
        stepped.device_id = sessions.device_id
        and stepped.started_at between sessions.started_at and sessions.ended_at
asof left join guest_checkout_settings as shop_setting on stepped.started_at >= shop_setting.reported_at
