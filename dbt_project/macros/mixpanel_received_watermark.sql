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
