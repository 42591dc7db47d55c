{#-
    Where an incremental model over Mixpanel events starts: the newest receipt time
    (`last_processed_at`) the model has already seen, less `tessera__sessions_rebuild_margin_hours`
    for events received while the previous export ran. An empty table has seen nothing, so
    everything is new. One rule for every model that reads events by when Mixpanel received them
    (sessions, checkout events, the identity's device pairs).
-#}
{% macro mixpanel_received_watermark() -%}
    (
        select
            coalesce(
                max(watermark.last_processed_at)
                - to_hours(cast({{ var('tessera__sessions_rebuild_margin_hours') }} as bigint)),
                cast('-infinity' as timestamptz)
            )
        from {{ this }} as watermark
    )
{%- endmacro %}

{#-
    The values of `key` (a device, a checkout) on the events received since the watermark: the
    keys an incremental model rebuilds whole, since a late event can change what came before it.
-#}
{% macro mixpanel_keys_received_since_watermark(key) -%}
    (
        select received.{{ key }}
        from {{ ref('stg_mixpanel__events') }} as received
        where
            received.{{ key }} is not null
            and coalesce(received.processed_at, received.occurred_at) > {{ mixpanel_received_watermark() }}
    )
{%- endmacro %}
