-- VIP customers (lifecycle `vip`: many orders or high spend, buying on rhythm).
select
    customer_id,
    email,
    first_name,
    membership_tier,
    orders,
    revenue,
    rfm_score,
    top_category
from {{ email_audience() }} as audience
where lifecycle = 'vip'
