{#-
    Fails for every row of a segment whose customer may not receive marketing email (see the
    email_audience macro for the rule). A safety net for segments that are pushed to email:
    the segment's SQL already selects from email_audience(), this catches one that does not.
-#}
{% test only_emailable_customers(model, column_name='customer_id') %}

select segment.{{ column_name }}
from {{ model }} as segment
left join {{ ref('dim_customers') }} as consent on segment.{{ column_name }} = consent.customer_id
where
    consent.customer_id is null
    or consent.identity_status != 'known'
    or consent.email is null
    or consent.email_consent_status != 'subscribed'
    or consent.is_email_bounced
    or consent.has_marked_email_as_spam
    or consent.is_erased is true

{% endtest %}
