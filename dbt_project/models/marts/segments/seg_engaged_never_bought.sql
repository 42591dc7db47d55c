-- Subscribers who open or click our email but have never ordered, with their top recommendation.
select
    audience.customer_id,
    audience.email,
    audience.first_name,
    audience.top_category,
    audience.email_opens,
    audience.email_clicks,
    recommendations.product_id as recommended_product_id,
    recommendations.title as recommended_product_title
from {{ email_audience() }} as audience
left join {{ ref('customer_recommendations') }} as recommendations
    on audience.customer_id = recommendations.customer_id and recommendations.rank = 1
where audience.email_engagement = 'engaged' and audience.orders = 0
