{#-
    The identifiers of the records staging holds (CRM contacts, Shopify customers, orders and
    checkouts, email-platform profiles, Instagram comments and mentions), one row per (record,
    identifier): the source half of int_identity__occurrences (the sources are listed in the
    macro identity_record_sources).

    Incremental by dlt load: a run re-derives the records loaded after the newest load this
    table holds for their type (identity_record_watermarks). Its pre-hook first deletes every
    row of those records, so a changed record is written again whole. The
    table is then what a full refresh gives: each row is a function of its staging row alone.
    A change of how identifiers are read (a var, a normalizing macro) needs `--full-refresh`.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ identity_retire_changed_records() }}",
    )
}}

{%- set watermarks = identity_record_watermarks() -%}

with

{% for source in identity_record_sources() %}
    {{ source.record_type }}_records as (

        select * from {{ ref(source.model) }}
        {% if is_incremental() %}
            where {{ identity_record_changed(source, watermarks) }}
        {% endif %}

    ),

    {{ source.record_type }}_occurrences as (

        {% for id_source, id_type, raw, kind, normalized in source.ids %}
            select
                '{{ source.record_type }}:' || {{ source.key }} as record_id,
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
