{#-
    The identifiers of the analytics records, one row per (record, identifier): the analytics
    half of int_identity__occurrences. One record per distinct device-and-user or
    device-and-checkout pair the storefront's events carry, and one per device, so that a
    device nobody ever logged in on is still an identifier of its own; with the storefront rule
    (var tessera__mixpanel_user_id_is_shopify_customer_id), one per logged-in user, whose
    Mixpanel user id is their Shopify customer id.

    Rebuilt whole from the pairs (int_identity__mixpanel_pairs, itself incremental), not
    incrementally: a record aggregates every pair of its device or user, and an erasure removes
    one person's pairs from a shared device, which only a rebuild from the remaining pairs
    reflects (and the rebuild is a few seconds at 1M customers).
-#}
{{ config(materialized='table') }}

with

mixpanel_pairs as (

    select
        device_id,
        user_id,
        checkout_id,
        seen_at
    from {{ ref('int_identity__mixpanel_pairs') }}

),

mixpanel_devices as (

    select
        'mixpanel_device:' || device_id as record_id,
        'mixpanel_device' as record_type,
        'mixpanel' as source,
        'device_id' as id_type,
        device_id as id_value,
        'mixpanel_device' as kind,
        device_id as id_key,
        min(seen_at) as seen_at
    from mixpanel_pairs
    group by device_id

),

mixpanel_logins as (

    select
        'mixpanel_login:' || device_id || '|' || user_id as record_id,
        'mixpanel_login' as record_type,
        'mixpanel' as source,
        'device_id' as id_type,
        device_id as id_value,
        'mixpanel_device' as kind,
        device_id as id_key,
        min(seen_at) as seen_at
    from mixpanel_pairs
    where user_id is not null
    group by device_id, user_id

    union all

    select
        'mixpanel_login:' || device_id || '|' || user_id as record_id,
        'mixpanel_login' as record_type,
        'mixpanel' as source,
        'user_id' as id_type,
        user_id as id_value,
        'mixpanel_user' as kind,
        user_id as id_key,
        min(seen_at) as seen_at
    from mixpanel_pairs
    where user_id is not null
    group by device_id, user_id

),

mixpanel_checkouts as (

    select
        'mixpanel_checkout:' || device_id || '|' || checkout_id as record_id,
        'mixpanel_checkout' as record_type,
        'mixpanel' as source,
        'device_id' as id_type,
        device_id as id_value,
        'mixpanel_device' as kind,
        device_id as id_key,
        min(seen_at) as seen_at
    from mixpanel_pairs
    where checkout_id is not null
    group by device_id, checkout_id

    union all

    select
        'mixpanel_checkout:' || device_id || '|' || checkout_id as record_id,
        'mixpanel_checkout' as record_type,
        'mixpanel' as source,
        'checkout_id' as id_type,
        checkout_id as id_value,
        'shopify_checkout' as kind,
        checkout_id as id_key,
        min(seen_at) as seen_at
    from mixpanel_pairs
    where checkout_id is not null
    group by device_id, checkout_id

),

{% if var('tessera__mixpanel_user_id_is_shopify_customer_id') %}
-- The storefront identifies a logged-in visitor by their Shopify customer id, so a Mixpanel
-- user id and the Shopify customer with that id are one account.
    storefront_accounts as (

        select
            'storefront_account:' || user_id as record_id,
            'storefront_account' as record_type,
            'mixpanel' as source,
            'user_id' as id_type,
            user_id as id_value,
            'mixpanel_user' as kind,
            user_id as id_key,
            min(seen_at) as seen_at
        from mixpanel_pairs
        where user_id is not null
        group by user_id

        union all

        select
            'storefront_account:' || user_id as record_id,
            'storefront_account' as record_type,
            'shopify' as source,
            'customer_id' as id_type,
            user_id as id_value,
            'shopify_customer' as kind,
            user_id as id_key,
            min(seen_at) as seen_at
        from mixpanel_pairs
        where user_id is not null
        group by user_id

    ),
{% endif %}

occurrences as (

    select * from mixpanel_devices
    union all
    select * from mixpanel_logins
    union all
    select * from mixpanel_checkouts
    {% if var('tessera__mixpanel_user_id_is_shopify_customer_id') %}
        union all
        select * from storefront_accounts
    {% endif %}

)

select
    record_id,
    record_type,
    source,
    id_type,
    id_value,
    kind,
    kind || ':' || id_key as node,
    seen_at
from occurrences
