{#-
    One row per resolved customer with the traits a marketer needs. Which source wins for each
    trait (survivorship) is documented on the intermediate model that computes it; the best
    email and phone are chosen here:

    - Best email (and phone): of the customer's identifiers that link (not blocked), the one
      carried by the most records, then the most recently seen, then the first in sort order (so
      a tie is broken the same way every build): a typo typed once into a guest checkout loses
      to the address used everywhere else.
    - `identity_status`: `known` (has an email, phone or account), `anonymous` (devices and
      checkouts only), `unlinked_identifier` (a blocked identifier on its own: a placeholder, a
      role address, a hub, a shared device; kept so the identity map is complete, never a
      person to market to).
-#}

with

resolved as (

    select * from {{ ref('int_identity__resolved') }}

),

nodes as (

    select * from {{ ref('int_identity__nodes') }}

),

device_activity as (

    select
        'mixpanel_device:' || device_id as node,
        min(occurred_at) as first_event_at,
        max(occurred_at) as last_event_at
    from {{ ref('stg_mixpanel__events') }}
    where device_id is not null
    group by device_id

),

identifiers as (

    select
        resolved.customer_id,
        resolved.kind,
        resolved.is_blocked,
        substr(resolved.node, length(resolved.kind) + 2) as normalized_value,
        nodes.records,
        least(nodes.first_seen_at, device_activity.first_event_at) as first_seen_at,
        greatest(nodes.last_seen_at, device_activity.last_event_at) as last_seen_at
    from resolved
    inner join nodes on resolved.node = nodes.node
    left join device_activity on resolved.node = device_activity.node

),

identity as (

    select
        customer_id,
        arg_max(normalized_value, (records, last_seen_at, normalized_value)) filter (
            where kind = 'email' and not is_blocked
        ) as email,
        arg_max(normalized_value, (records, last_seen_at, normalized_value)) filter (
            where kind = 'phone' and not is_blocked
        ) as phone,
        count(*) filter (where kind = 'mixpanel_device') as devices,
        count(*) as identifiers,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at,
        case
            when bool_and(is_blocked) then 'unlinked_identifier'
            when bool_or(kind not in ('mixpanel_device', 'shopify_checkout') and not is_blocked) then 'known'
            else 'anonymous'
        end as identity_status
    from identifiers
    group by customer_id

),

-- Customers still carrying an identifier an erasure request tombstoned (the request arrived
-- after the night's erasure step, or a source sent the person again): never marketed to.
erased as (

    select distinct identifiers.customer_id
    from {{ ref('customer_identifiers') }} as identifiers
    inner join {{ ref('stg_privacy__erased_identifiers') }} as erased
        on sha256(lower(trim(identifiers.id_value))) = erased.id_hash

)

select
    identity.customer_id,
    identity.identity_status,
    identity.email,
    identity.phone,
    traits.first_name,
    traits.last_name,
    traits.city,
    traits.region,
    traits.country,
    traits.postal_code,
    identity.first_seen_at,
    identity.last_seen_at,
    identity.devices,
    identity.identifiers,
    coalesce(orders.orders, 0) as orders,
    coalesce(orders.revenue, 0) as revenue,
    orders.average_order_value,
    orders.first_order_at,
    orders.last_order_at,
    orders.last_order_value,
    traits.membership_tier,
    coalesce(consent.email_consent_status, 'never_subscribed') as email_consent_status,
    consent.email_consent_source,
    consent.unsubscribed_in,
    consent.subscribed_in,
    coalesce(consent.is_email_bounced, false) as is_email_bounced,
    coalesce(consent.has_marked_email_as_spam, false) as has_marked_email_as_spam,
    consent.email_consent_updated_at,
    coalesce(engagement.email_opens, 0) as email_opens,
    coalesce(engagement.email_clicks, 0) as email_clicks,
    engagement.last_email_open_at,
    engagement.last_email_click_at,
    coalesce(engagement.email_engagement, 'none') as email_engagement,
    social.instagram_username,
    coalesce(social.instagram_comments, 0) as instagram_comments,
    social.instagram_sentiment_score,
    social.instagram_sentiment,
    traits.lifecycle_stage,
    erased.customer_id is not null as is_erased
from identity
left join {{ ref('int_customers__profile_traits') }} as traits on identity.customer_id = traits.customer_id
left join {{ ref('int_customers__orders') }} as orders on identity.customer_id = orders.customer_id
left join {{ ref('int_customers__email_consent') }} as consent on identity.customer_id = consent.customer_id
left join {{ ref('int_customers__email_engagement') }} as engagement on identity.customer_id = engagement.customer_id
left join {{ ref('int_customers__social') }} as social on identity.customer_id = social.customer_id
left join erased on identity.customer_id = erased.customer_id
