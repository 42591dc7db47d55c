{#-
    The analytics half of int_identity__occurrences: every distinct (device, user, checkout)
    combination the storefront's events carry, with when it was first seen. Kept apart, and
    incremental, because it is the one identity input that reads every event.
    Incremental: a run reads only the events Mixpanel received after the newest one this table
    has seen, less `tessera__sessions_rebuild_margin_hours` (events received while the previous
    export ran, as int_device_sessions does), and merges their combinations in: one seen before
    keeps its earliest sighting. Late events can only add combinations or move a first sighting
    earlier, both of which the merge takes, so a full refresh gives the same table.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='pair_key',
        on_schema_change='fail',
    )
}}

with

received as (

    select
        device_id,
        user_id,
        checkout_id,
        occurred_at,
        coalesce(processed_at, occurred_at) as processed_at
    from {{ ref('stg_mixpanel__events') }}
    where
        device_id is not null
        {% if is_incremental() %}
            and coalesce(processed_at, occurred_at) > {{ mixpanel_received_watermark() }}
        {% endif %}

),

received_pairs as (

    select
        -- A JSON array keeps the three parts apart whatever they contain, nulls included.
        cast(to_json([device_id, user_id, checkout_id]) as varchar) as pair_key,
        device_id,
        user_id,
        checkout_id,
        min(occurred_at) as seen_at,
        max(processed_at) as last_processed_at
    from received
    group by all

),

merged as (

    select * from received_pairs
    {% if is_incremental() %}
        union all
        select
            pair_key,
            device_id,
            user_id,
            checkout_id,
            seen_at,
            last_processed_at
        from {{ this }}
        where pair_key in (select received_pairs.pair_key from received_pairs)
    {% endif %}

)

select
    pair_key,
    device_id,
    user_id,
    checkout_id,
    min(seen_at) as seen_at,
    max(last_processed_at) as last_processed_at
from merged
group by pair_key, device_id, user_id, checkout_id
