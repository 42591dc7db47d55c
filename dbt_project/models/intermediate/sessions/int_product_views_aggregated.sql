{#-
    What each customer looked at: one row per customer and product with their Product Viewed
    events on every device and account of theirs, up to "now". The customer of an event is the
    customer of the account logged in, else of the device (a shared household device is a
    customer of its own, so one member's browsing is not recommended to another).

    int_products__customer_interactions already counts these views per customer and product,
    with the same rule for whose they are: this reads them there instead of grouping every
    Product Viewed event again each night.
-#}

select
    customer_id,
    product_id,
    view_events as view_count,
    last_viewed_at
from {{ ref('int_products__customer_interactions') }}
where view_events > 0
