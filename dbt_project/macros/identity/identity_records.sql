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


{#-
    Per record type, the newest dlt load id int_identity__record_occurrences holds: a run
    re-derives the records of every later load. dlt merges a load into each table in one
    transaction, so a table never shows part of a load, and it loads a pipeline's packages in
    order, so no load older than one already seen can appear later. Read before anything is
    deleted, by the model and by its pre-hook, so both select the same records. Empty outside an
    incremental run: every record is new.
-#}
{% macro identity_record_watermarks() -%}
    {%- if not execute or not is_incremental() -%}
        {%- do return({}) -%}
    {%- endif -%}
    {%- set found = run_query("select record_type, max(_dlt_load_id) from " ~ this ~ " group by record_type") -%}
    {%- set watermarks = {} -%}
    {%- for row in found.rows -%}
        {%- if row[1] is not none -%}
            {%- do watermarks.update({row[0]: row[1]}) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do return(watermarks) -%}
{%- endmacro %}


{#- Whether a staging row of `source` (an identity_record_sources() entry) is to be re-derived. -#}
{% macro identity_record_changed(source, watermarks) -%}
    {%- if source.record_type in watermarks -%}
        _dlt_load_id > '{{ watermarks[source.record_type] }}'
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{#-
    The pre-hook of int_identity__record_occurrences: every row of a record a load has changed
    since the last run goes, so the record is written again whole (and a record that lost all
    its identifiers leaves none behind). Records deleted from raw are only ever deleted by an
    erasure, which deletes their rows here too.
-#}
{% macro identity_retire_changed_records() -%}
    {%- if is_incremental() -%}
        {%- set watermarks = identity_record_watermarks() -%}
        delete from {{ this }} where record_id in (
            {%- for source in identity_record_sources() %}
                select '{{ source.record_type }}:' || {{ source.key }}
                from {{ ref(source.model) }}
                where {{ identity_record_changed(source, watermarks) }}
                {% if not loop.last %}union all{% endif %}
            {%- endfor %}
        )
    {%- endif -%}
{%- endmacro %}
