{#-
    One row per checkout the storefront tracked (Mixpanel events with a checkout token), with
    what int_traits__price_sensitivity needs to know whether the shopper left it when extra
    costs appeared: the customer of its latest event (a shopper who logs in mid-checkout is
    known from then on), whether it showed a shipping step with shipping or fees above zero,
    whether it got past that step, and its last activity. The customer of an event is the
    customer of its logged-in storefront account when there is one, else of its device.

    This is the per-checkout aggregation over every checkout event; nothing here depends on the
    run's "now", which int_traits__price_sensitivity applies (the quiet time before an exit
    counts, and events after "now", whose checkouts it recomputes from their events).

    Incremental: a checkout's row is rebuilt from all its events when one of them was received
    (Mixpanel's `processed_at`) after the newest event this table has seen, less
    `tessera__sessions_rebuild_margin_hours` (the rule of int_device_sessions), or when one of
    its events' devices or storefront accounts changed customer in this run's identity
    resolution (a device or account record's customer changes only when one of its identifiers
    moves: int_identity__resolved's `customer_id` against `previous_customer_id`). Nothing else
    changes a row, so the table equals a full refresh.
-#}

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='checkout_id',
        on_schema_change='fail',
    )
}}

-- depends_on: {{ ref('int_identity__occurrences') }}
-- depends_on: {{ ref('int_identity__resolved') }}

with

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where customer_id is not null

),

{% if is_incremental() %}

    -- Devices and storefront accounts one of whose identifiers changed customer in this run.
    moved_records as (

        select occurrences.record_id
        from {{ ref('int_identity__occurrences') }} as occurrences
        inner join {{ ref('int_identity__resolved') }} as resolved on occurrences.node = resolved.node
        where
            occurrences.record_type in ('mixpanel_device', 'storefront_account')
            and resolved.customer_id is distinct from resolved.previous_customer_id

    ),

    rebuilt_checkouts as (

        select distinct received.checkout_id
        from {{ ref('stg_mixpanel__events') }} as received
        where
            received.checkout_id is not null
            and (
                coalesce(received.processed_at, received.occurred_at) > {{ mixpanel_received_watermark() }}
                or 'mixpanel_device:' || received.device_id in (select moved_records.record_id from moved_records)
                or 'storefront_account:' || received.user_id in (select moved_records.record_id from moved_records)
            )

    ),

{% endif %}

checkout_events as (

    select
        coalesce(account_records.customer_id, device_records.customer_id) as customer_id,
        events.checkout_id,
        events.event_name,
        events.step,
        coalesce(events.shipping, 0) + coalesce(events.fees, 0) as extra_costs,
        events.occurred_at,
        coalesce(events.processed_at, events.occurred_at) as processed_at
    from {{ ref('stg_mixpanel__events') }} as events
    left join records as account_records on account_records.record_id = 'storefront_account:' || events.user_id
    left join records as device_records on device_records.record_id = 'mixpanel_device:' || events.device_id
    where
        events.checkout_id is not null
        {% if is_incremental() %}
            and events.checkout_id in (select rebuilt_checkouts.checkout_id from rebuilt_checkouts)
        {% endif %}

)

select
    checkout_id,
    -- Events at the same moment under two customers: the greater id, so every build agrees.
    arg_max(customer_id, (occurred_at, customer_id)) filter (where customer_id is not null) as customer_id,
    bool_or(event_name = 'Checkout Step Viewed' and step = 2 and extra_costs > 0) as showed_extra_costs,
    bool_or(
        (event_name = 'Checkout Step Completed' and step >= 2)
        or event_name in ('Payment Info Entered', 'Order Completed')
    ) as passed_extra_costs,
    max(occurred_at) as last_activity_at,
    -- When Mixpanel received the checkout's newest event: where the next incremental run starts.
    max(processed_at) as last_processed_at
from checkout_events
group by checkout_id
