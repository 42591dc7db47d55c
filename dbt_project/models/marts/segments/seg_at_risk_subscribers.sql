-- Buyers whose next order is overdue (lifecycle `at_risk`), with the offer chosen for them.
select
    audience.customer_id,
    audience.email,
    audience.first_name,
    audience.membership_tier,
    audience.top_category,
    audience.last_order_at,
    audience.days_since_last_order,
    audience.predicted_next_order_at,
    audience.churn_risk,
    offers.offer_type,
    offers.offer_percent
from {{ email_audience() }} as audience
left join {{ ref('customer_offers') }} as offers on audience.customer_id = offers.customer_id
where audience.lifecycle = 'at_risk'
