-- Customers whose decisions price drives (discount_sensitivity `high`): deals, not full price.
select
    customer_id,
    email,
    first_name,
    membership_tier,
    top_category,
    price_sensitivity_score
from {{ email_audience() }} as audience
where discount_sensitivity = 'high'
