{#-
    The records the identity graph reads from staging, one entry per source model: its record
    type, its key, when a record was first seen, and the identifiers it carries as
    (source, id_type, raw column, kind, normalized expression). A record's id is
    `<record_type>:<key>`. Read by int_identity__record_occurrences and by the pre-hook that
    retires the records a load changed.
-#}
{% macro identity_record_sources() -%}
    {%- do return([
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
    ]) -%}
{%- endmacro %}


{#- `<record_type>:<key>` of a staging row of `source` (an identity_record_sources() entry). -#}
{% macro identity_record_id(source) -%}
    '{{ source.record_type }}:' || {{ source.key }}
{%- endmacro %}


{#-
    The pre-hook of int_identity__record_occurrences. It deletes every row of a record that
    - staging holds from a dlt load this table has not taken in for that record type (a new or
      changed record: dlt stamps a row with the load that last merged it), or
    - staging no longer holds (erased, or removed from raw any other way).
    The model then derives every staging record the table lacks, so a changed record is written
    again whole, from all its staging rows. Set membership, not a newest-load comparison: it
    holds whatever order loads arrive in. Each subquery reads the table before the statement
    deletes anything.
-#}
{% macro identity_retire_changed_records() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} as held
        where
            held.record_id in (
                {%- for source in identity_record_sources() %}
                    select {{ identity_record_id(source) }}
                    from {{ ref(source.model) }}
                    where
                        {{ source.key }} is not null
                        and _dlt_load_id not in (
                            select loads._dlt_load_id from {{ this }} as loads
                            where loads.record_type = '{{ source.record_type }}'
                        )
                    {% if not loop.last %}union all{% endif %}
                {%- endfor %}
            )
            or held.record_id not in (
                {%- for source in identity_record_sources() %}
                    select {{ identity_record_id(source) }}
                    from {{ ref(source.model) }}
                    where {{ source.key }} is not null
                    {% if not loop.last %}union all{% endif %}
                {%- endfor %}
            )
    {%- endif -%}
{%- endmacro %}
