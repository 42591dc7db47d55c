{#-
    The identifiers of the records staging holds (CRM contacts, Shopify customers, orders and
    checkouts, email-platform profiles, Instagram comments and mentions), one row per (record,
    identifier): the source half of int_identity__occurrences (the sources are listed in the
    macro identity_record_sources). A staging row without a key is no record and has no rows.

    Incremental by dlt load. The pre-hook (identity_retire_changed_records) deletes the records
    staging holds from a load this table has not taken in (new and changed ones) and those
    staging no longer holds; the model then derives every staging record the table lacks, from
    all of that record's staging rows (a Mailchimp member is one record in every audience). So
    whatever removed rows here (the pre-hook, an erasure, a crash between the two statements),
    the next run writes back exactly what staging implies, and the table equals a full refresh:
    each record is a function of its staging rows alone. A change of how identifiers are read
    (a var, a normalizing macro) needs `--full-refresh`.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ identity_retire_changed_records() }}",
    )
}}

with

{% for source in identity_record_sources() %}
    {{ source.record_type }}_records as (

        select * from {{ ref(source.model) }}
        where
            {{ source.key }} is not null
            {% if is_incremental() %}
                and {{ identity_record_id(source) }} not in (
                    select held.record_id from {{ this }} as held
                    where held.record_id is not null
                )
            {% endif %}

    ),

    {{ source.record_type }}_occurrences as (

        {% for id_source, id_type, raw, kind, normalized in source.ids %}
            select
                {{ identity_record_id(source) }} as record_id,
                '{{ source.record_type }}' as record_type,
                '{{ id_source }}' as source,
                '{{ id_type }}' as id_type,
                {{ raw }} as id_value,
                '{{ kind }}' as kind,
                coalesce({{ normalized }}, 'raw:' || {{ raw }}) as id_key,
                {{ source.seen_at }} as seen_at,
                _dlt_load_id
            from {{ source.record_type }}_records
            where nullif(trim({{ raw }}), '') is not null
            {% if not loop.last %}union all{% endif %}
        {% endfor %}

    ),

{% endfor %}

occurrences as (

    {% for source in identity_record_sources() %}
        select * from {{ source.record_type }}_occurrences
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select
    record_id,
    record_type,
    source,
    id_type,
    id_value,
    kind,
    kind || ':' || id_key as node,
    seen_at,
    _dlt_load_id
from occurrences
