{#-
    Every identifier every record carries, one row per (record, identifier).

    A record is one thing a source says belongs to one person: a CRM contact, a Shopify
    customer, order or checkout, an email-platform profile, an Instagram comment, and for the
    analytics events one distinct pair (a device and the user who logged in on it, or a device
    and the checkout started on it). Identifiers that share a record are the graph's edges.

    `node` is the identifier as the graph sees it: normalized emails and phones are one node
    across sources (the same address typed into HubSpot and Shopify is one identifier), native
    ids stay per source. A value that does not normalize (a phone "n/a") keeps its raw value as
    the node, so it is still mapped, and int_identity__nodes blocks it.
-#}

{%- set identifier_sets = [
    {
        "model": "stg_shopify__customers", "record_type": "shopify_customer", "key": "customer_id",
        "seen_at": "created_at",
        "ids": [
            ("shopify", "customer_id", "customer_id", "shopify_customer", "customer_id"),
            ("shopify", "email", "email_raw", "email", "email"),
            ("shopify", "phone", "phone_raw", "phone", "phone"),
        ],
    },
    {
        "model": "stg_shopify__orders", "record_type": "shopify_order", "key": "order_id",
        "seen_at": "created_at",
        "ids": [
            ("shopify", "customer_id", "customer_id", "shopify_customer", "customer_id"),
            ("shopify", "email", "email_raw", "email", "email"),
            ("shopify", "phone", "phone_raw", "phone", "phone"),
            ("shopify", "checkout_token", "checkout_token", "shopify_checkout", "checkout_token"),
        ],
    },
    {
        "model": "stg_shopify__checkouts", "record_type": "shopify_checkout", "key": "checkout_id",
        "seen_at": "created_at",
        "ids": [
            ("shopify", "customer_id", "customer_id", "shopify_customer", "customer_id"),
            ("shopify", "email", "email_raw", "email", "email"),
            ("shopify", "phone", "phone_raw", "phone", "phone"),
            ("shopify", "checkout_token", "checkout_token", "shopify_checkout", "checkout_token"),
        ],
    },
    {
        "model": "stg_hubspot__contacts", "record_type": "hubspot_contact", "key": "contact_id",
        "seen_at": "created_at",
        "ids": [
            ("hubspot", "contact_id", "contact_id", "hubspot_contact", "contact_id"),
            ("hubspot", "email", "email_raw", "email", "email"),
            ("hubspot", "phone", "phone_raw", "phone", "phone"),
        ],
    },
    {
        "model": "stg_klaviyo__profiles", "record_type": "klaviyo_profile", "key": "profile_id",
        "seen_at": "created_at",
        "ids": [
            ("klaviyo", "profile_id", "profile_id", "klaviyo_profile", "profile_id"),
            ("klaviyo", "email", "email_raw", "email", "email"),
            ("klaviyo", "phone", "phone_raw", "phone", "phone"),
        ],
    },
    {
        "model": "stg_mailchimp__members", "record_type": "mailchimp_member", "key": "unique_email_id",
        "seen_at": "created_at",
        "ids": [
            ("mailchimp", "unique_email_id", "unique_email_id", "mailchimp_member", "unique_email_id"),
            ("mailchimp", "email", "email_raw", "email", "email"),
            ("mailchimp", "phone", "phone_raw", "phone", "phone"),
        ],
    },
    {
        "model": "stg_instagram__comments", "record_type": "instagram_comment", "key": "comment_id",
        "seen_at": "commented_at",
        "ids": [
            ("instagram", "user_id", "user_id", "instagram_user", "user_id"),
            ("instagram", "username", "username", "instagram_username", "lower(username)"),
        ],
    },
    {
        "model": "stg_instagram__mentions", "record_type": "instagram_mention", "key": "media_id",
        "seen_at": "mentioned_at",
        "ids": [
            ("instagram", "username", "username", "instagram_username", "lower(username)"),
        ],
    },
] -%}

with

{% for set in identifier_sets %}
    {{ set.record_type }}_occurrences as (

        {% for source, id_type, raw, kind, normalized in set.ids %}
            select
                '{{ set.record_type }}:' || {{ set.key }} as record_id,
                '{{ set.record_type }}' as record_type,
                '{{ source }}' as source,
                '{{ id_type }}' as id_type,
                {{ raw }} as id_value,
                '{{ kind }}' as kind,
                coalesce({{ normalized }}, 'raw:' || {{ raw }}) as id_key,
                {{ set.seen_at }} as seen_at
            from {{ ref(set.model) }}
            where nullif(trim({{ raw }}), '') is not null
            {% if not loop.last %}union all{% endif %}
        {% endfor %}

    ),

{% endfor %}

-- Analytics: one record per distinct device-and-user or device-and-checkout pair, and one per
-- device, so that a device nobody ever logged in on is still an identifier of its own.
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

    {% for set in identifier_sets %}
        select * from {{ set.record_type }}_occurrences
        union all
    {% endfor %}
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
