{#-
    Email-marketing consent per customer, strictest platform first: a person who unsubscribed
    or marked a mail as spam in any platform (Klaviyo, Mailchimp, Shopify, HubSpot) is not
    subscribed anywhere, whatever another platform still says. Only when no platform says
    otherwise and one holds a subscription is the customer `subscribed`; the consent source is
    where the earliest subscription was given (the first platform in sort order when several
    were given at the same moment). A bounce (hard, invalid, cleaned) is not a withdrawal of
    consent: it sets `is_email_bounced`, which keeps them out of every audience.
-#}

with

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where customer_id is not null

),

signals as (

    select
        records.customer_id,
        'klaviyo' as platform,
        upper(k.email_marketing_consent) = 'SUBSCRIBED' as is_subscribed,
        upper(k.email_marketing_consent) = 'UNSUBSCRIBED' as is_unsubscribed,
        k.is_email_bounced as is_bounced,
        k.has_marked_email_as_spam as is_spam_complaint,
        k.email_marketing_method as consent_method,
        k.email_marketing_consent_at as changed_at
    from {{ ref('stg_klaviyo__profiles') }} as k
    inner join records on records.record_id = 'klaviyo_profile:' || k.profile_id

    union all

    select
        records.customer_id,
        'mailchimp' as platform,
        m.status = 'subscribed' as is_subscribed,
        m.status = 'unsubscribed' as is_unsubscribed,
        m.status = 'cleaned' as is_bounced,
        false as is_spam_complaint,
        'Mailchimp signup' as consent_method,
        coalesce(m.opted_in_at, m.last_changed_at) as changed_at
    from {{ ref('stg_mailchimp__members') }} as m
    inner join records on records.record_id = 'mailchimp_member:' || m.unique_email_id

    union all

    select
        records.customer_id,
        'shopify' as platform,
        lower(s.email_marketing_consent) = 'subscribed' as is_subscribed,
        lower(s.email_marketing_consent) = 'unsubscribed' as is_unsubscribed,
        false as is_bounced,
        false as is_spam_complaint,
        'Shopify ' || coalesce(lower(s.email_marketing_opt_in_level), 'opt-in') as consent_method,
        s.email_marketing_consent_updated_at as changed_at
    from {{ ref('stg_shopify__customers') }} as s
    inner join records on records.record_id = 'shopify_customer:' || s.customer_id

    union all

    select
        records.customer_id,
        'hubspot' as platform,
        false as is_subscribed,
        h.is_email_opted_out as is_unsubscribed,
        false as is_bounced,
        false as is_spam_complaint,
        null as consent_method,
        h.updated_at as changed_at
    from {{ ref('stg_hubspot__contacts') }} as h
    inner join records on records.record_id = 'hubspot_contact:' || h.contact_id

)

select
    customer_id,
    case
        when bool_or(is_unsubscribed or is_spam_complaint) then 'unsubscribed'
        when bool_or(is_subscribed) then 'subscribed'
        else 'never_subscribed'
    end as email_consent_status,
    bool_or(is_bounced) as is_email_bounced,
    bool_or(is_spam_complaint) as has_marked_email_as_spam,
    string_agg(distinct platform, ', ' order by platform) filter (
        where is_unsubscribed or is_spam_complaint
    ) as unsubscribed_in,
    string_agg(distinct platform, ', ' order by platform) filter (
        where is_subscribed
    ) as subscribed_in,
    -- Subscriptions given at the same moment (one signup synced to several platforms): the
    -- first platform in sort order, so every build names the same one.
    arg_min(
        platform || ': ' || coalesce(consent_method, 'unknown method'),
        (changed_at, platform, coalesce(consent_method, ''))
    ) filter (
        where is_subscribed
    ) as email_consent_source,
    max(changed_at) as email_consent_updated_at
from signals
group by customer_id
