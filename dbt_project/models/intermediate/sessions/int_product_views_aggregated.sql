{#-
    What each customer looked at: one row per customer and product with their Product Viewed
    events on every device and account of theirs, up to "now". The customer of an event is the
    customer of the account logged in, else of the device (a shared household device is a
    customer of its own, so one member's browsing is not recommended to another).
-#}

-- A table, not a view like its neighbours: its three tests and the abandonment mart would each
-- aggregate every Product Viewed event again.
{{ config(materialized='table') }}

with

viewed as (

    -- Grouped before the identity lookup: far fewer rows to join than events.
    select
        device_id,
        user_id,
        product_id,
        count(*) as view_count,
        max(occurred_at) as last_viewed_at
    from {{ ref('stg_mixpanel__events') }}
    where
        event_name = 'Product Viewed'
        and product_id is not null
        and occurred_at <= {{ tessera_now() }}
    group by device_id, user_id, product_id

),

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where record_type in ('storefront_account', 'mixpanel_device') and customer_id is not null

)

select
    coalesce(account_records.customer_id, device_records.customer_id) as customer_id,
    viewed.product_id,
    sum(viewed.view_count) as view_count,
    max(viewed.last_viewed_at) as last_viewed_at
from viewed
left join records as account_records on 'storefront_account:' || viewed.user_id = account_records.record_id
left join records as device_records on 'mixpanel_device:' || viewed.device_id = device_records.record_id
where coalesce(account_records.customer_id, device_records.customer_id) is not null
group by all
