{#-
    Sessions with the customer they belong to. The customer is looked up on every run rather
    than stored in the incremental int_device_sessions: identity resolution can move a device
    to a person when new evidence arrives (a login, a typed email), and a stored customer id
    would then be stale for every earlier session of that device.

    Customer of a session: the customer of the storefront account that logged in during it,
    else the customer of its device (a shared household device is a customer of its own).
-#}

with

sessions as (

    select * from {{ ref('int_device_sessions') }}

),

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where record_type in ('storefront_account', 'mixpanel_device')

)

select
    sessions.session_id,
    sessions.device_id,
    coalesce(account_records.customer_id, device_records.customer_id) as customer_id,
    sessions.user_id,
    sessions.device_session_number,
    sessions.started_at,
    sessions.ended_at,
    sessions.duration_seconds,
    sessions.events,
    sessions.landing_utm_source,
    sessions.landing_utm_medium,
    sessions.channel,
    sessions.device_type,
    sessions.os,
    sessions.browser,
    sessions.product_views,
    sessions.products_added,
    sessions.checkouts_started,
    sessions.orders_completed
from sessions
left join records as account_records on 'storefront_account:' || sessions.user_id = account_records.record_id
left join records as device_records on 'mixpanel_device:' || sessions.device_id = device_records.record_id
