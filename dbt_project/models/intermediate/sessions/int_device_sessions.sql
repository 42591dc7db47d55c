{#-
    Sessions per device, from every storefront event (the identity-free half of int_sessions).

    Inactivity rule: a device's events belong to one session until the device is silent for
    more than `tessera__session_timeout_minutes` (default 30, the convention of Mixpanel's and
    Google Analytics' session definitions); the next event starts a new session. A session
    never spans two devices. Events without a device id (sent from a server) have no session.

    Incremental: a late event (Mixpanel receives about 2% of events one to three days after
    they happen) can extend, start or join sessions anywhere in its device's history. So a run
    rebuilds every session of each device that received an event (by Mixpanel's `processed_at`)
    after the newest event this table has already seen, less a safety margin of
    `tessera__sessions_rebuild_margin_hours` for events received while the previous export ran;
    it deletes and re-inserts that device's sessions (`unique_key` is the device, not the
    session, so a session merged away by a late event disappears too). Other devices are
    untouched, and a full refresh gives the same table.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='device_id',
        on_schema_change='fail',
    )
}}

with

events as (

    select
        insert_id,
        device_id,
        user_id,
        event_name,
        occurred_at,
        coalesce(processed_at, occurred_at) as processed_at,
        utm_source,
        utm_medium,
        device_type,
        os,
        browser
    from {{ ref('stg_mixpanel__events') }}
    where
        device_id is not null
        {% if is_incremental() %}
            and device_id in {{ mixpanel_keys_received_since_watermark('device_id') }}
        {% endif %}

),

gaps as (

    select
        *,
        coalesce(
            occurred_at - lag(occurred_at) over (partition by device_id order by occurred_at)
            > to_minutes(cast({{ var('tessera__session_timeout_minutes') }} as bigint)),
            true
        ) as is_session_start
    from events

),

numbered as (

    select
        *,
        sum(case when is_session_start then 1 else 0 end) over (
            partition by device_id order by occurred_at asc, is_session_start desc, insert_id asc
            rows between unbounded preceding and current row
        ) as device_session_number
    from gaps

),

sessions as (

    select
        device_id,
        device_session_number,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        count(*) as events,
        -- The person logged in during the session (the last account if several).
        arg_max(user_id, (occurred_at, insert_id)) filter (where user_id is not null) as user_id,
        -- Where the visit came from and on what: the landing (first) event's.
        arg_min(utm_source, (occurred_at, insert_id)) as landing_utm_source,
        arg_min(utm_medium, (occurred_at, insert_id)) as landing_utm_medium,
        arg_min(device_type, (occurred_at, insert_id)) as device_type,
        arg_min(os, (occurred_at, insert_id)) as os,
        arg_min(browser, (occurred_at, insert_id)) as browser,
        count(*) filter (where event_name = 'Product Viewed') as product_views,
        count(*) filter (where event_name = 'Product Added') as products_added,
        count(*) filter (where event_name = 'Checkout Started') as checkouts_started,
        count(*) filter (where event_name = 'Order Completed') as orders_completed,
        max(processed_at) as last_processed_at
    from numbered
    group by device_id, device_session_number

)

select
    md5(device_id || '|' || cast(epoch_us(started_at) as varchar)) as session_id,
    device_id,
    device_session_number,
    user_id,
    started_at,
    ended_at,
    date_diff('second', started_at, ended_at) as duration_seconds,
    events,
    landing_utm_source,
    landing_utm_medium,
    -- The marketing channel, grouped from the landing medium the way analytics tools group it.
    case
        when landing_utm_medium in ('cpc', 'ppc', 'paidsearch', 'paid_search') then 'paid_search'
        when landing_utm_medium in ('social', 'social-media', 'paid_social') then 'social'
        when landing_utm_medium = 'email' then 'email'
        when landing_utm_medium in ('referral', 'affiliate') then 'referral'
        when landing_utm_medium in ('display', 'banner', 'cpm') then 'display'
        when
            coalesce(landing_utm_source, '(direct)') = '(direct)'
            and coalesce(landing_utm_medium, '(none)') = '(none)'
            then 'direct'
        else 'other'
    end as channel,
    device_type,
    os,
    browser,
    product_views,
    products_added,
    checkouts_started,
    orders_completed,
    last_processed_at
from sessions
