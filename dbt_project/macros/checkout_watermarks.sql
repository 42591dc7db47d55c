{#-
    What fct_checkouts had read when it was last built, so that its next incremental run knows
    which checkouts received something since: the newest Mixpanel receipt time its checkout
    events and sessions had (`last_processed_at`), and the newest dlt load of the Shopify rows it
    reads (abandoned checkouts and orders, with their line items). A mart keeps its
    columns, so these two values live in a one-row table of their own beside the intermediate
    models, written after each build (full or incremental) of fct_checkouts. It holds no person
    data.
-#}
{% macro checkout_watermarks_relation() -%}
    {{ return(ref('int_checkout_events_pivoted').incorporate(path={'identifier': 'fct_checkouts__watermarks'})) }}
{%- endmacro %}

{#-
    The Shopify tables whose loads can change a checkout's row. Their line items are dlt child
    tables: dlt stamps the load id on the parent row only and replaces a parent's child rows
    whenever it loads the parent again.
-#}
{% macro checkout_shopify_loaded_tables() -%}
    {{ return([
        source('shopify', 'abandoned_checkouts'),
        source('shopify', 'orders'),
    ]) }}
{%- endmacro %}

{#- Post-hook of fct_checkouts: record what this build read. -#}
{% macro save_checkout_watermarks() -%}
    create or replace table {{ checkout_watermarks_relation() }} as
    select
        least(
            (select max(last_processed_at) from {{ ref('int_checkout_events_pivoted') }}),
            (select max(last_processed_at) from {{ ref('int_device_sessions') }})
        ) as mixpanel_received_through,
        greatest(
            {%- for table in checkout_shopify_loaded_tables() %}
                (select max(cast(_dlt_load_id as double)) from {{ table }}){{ ',' if not loop.last }}
            {%- endfor %}
        ) as shopify_loaded_through
{%- endmacro %}

{#-
    The watermarks as one row for an incremental run: Mixpanel receipts after
    `mixpanel_received_after` (the recorded one less `tessera__sessions_rebuild_margin_hours`,
    the house rule for events received while the previous export ran) and Shopify loads after
    `shopify_loaded_after` are new. Without a record (a table built before the record existed),
    everything is new, so the run rebuilds every checkout.
-#}
{% macro checkout_watermarks() -%}
    {#- checkout_watermarks_relation() spelled out: the linter's templater ends a macro at a nested return(). -#}
    {%- set pivoted = ref('int_checkout_events_pivoted') -%}
    {%- set recorded = pivoted.incorporate(path={'identifier': 'fct_checkouts__watermarks'}) -%}
    {%- set exists = optional_relation(recorded.schema, recorded.identifier) -%}
    select
        {% if exists -%}
            coalesce(
                max(mixpanel_received_through)
                - to_hours(cast({{ var('tessera__sessions_rebuild_margin_hours') }} as bigint)),
                cast('-infinity' as timestamptz)
            ) as mixpanel_received_after,
            coalesce(max(shopify_loaded_through), cast('-infinity' as double)) as shopify_loaded_after
        from {{ recorded }}
        {%- else -%}
            cast('-infinity' as timestamptz) as mixpanel_received_after,
            cast('-infinity' as double) as shopify_loaded_after
        {%- endif %}
{%- endmacro %}
