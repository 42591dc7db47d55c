{#-
    The customers an email segment may contain, with every trait a segment can filter on or
    push (marts.customer_traits): known customers with an email address whose email-marketing
    consent is `subscribed` (dim_customers: an unsubscribe or spam complaint in any platform
    wins over a subscription elsewhere), whose address neither bounced nor complained, and who
    asked for no erasure.
    Every segment pushed to email selects from this, so consent is enforced in one place:

        select customer_id, email, first_name
        from {{ email_audience() }} as audience
        where lifecycle = 'vip'
-#}
{% macro email_audience() -%}
    (
        select traits.*
        from {{ ref('customer_traits') }} as traits
        inner join {{ ref('dim_customers') }} as consent on traits.customer_id = consent.customer_id
        where
            consent.identity_status = 'known'
            and consent.email is not null
            and consent.email_consent_status = 'subscribed'
            and not consent.is_email_bounced
            and not consent.has_marked_email_as_spam
            and consent.is_erased is not true
    )
{%- endmacro %}
