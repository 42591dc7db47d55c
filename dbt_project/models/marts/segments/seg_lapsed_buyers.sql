-- Buyers long past their expected next order (lifecycle `lapsed`), for a win-back.
select
    audience.customer_id,
    audience.email,
    audience.first_name,
    audience.membership_tier,
    audience.top_category,
    audience.orders,
    audience.last_order_at,
    offers.offer_type,
    offers.offer_percent
from {{ email_audience() }} as audience
left join {{ ref('customer_offers') }} as offers on audience.customer_id = offers.customer_id
where audience.lifecycle = 'lapsed'
