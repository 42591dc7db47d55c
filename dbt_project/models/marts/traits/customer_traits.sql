{#-
    One row per known customer: who they are as a buyer, for segments, offers and analysts.
    RFM, lifecycle, churn risk and purchase trend: int_traits__rfm and int_traits__lifecycle
    (rules in their headers); category affinity: int_traits__category_affinity; discount
    sensitivity: int_traits__price_sensitivity. Membership tier, consent, email engagement and
    social sentiment are the customer 360's (dim_customers), not recomputed here.
    A customer who never ordered is a `prospect`.
-#}

with

customers as (

    select * from {{ ref('dim_customers') }}
    where identity_status = 'known'

),

history as (

    select * from {{ ref('int_traits__order_history') }}

),

rfm as (

    select * from {{ ref('int_traits__rfm') }}

),

lifecycle as (

    select * from {{ ref('int_traits__lifecycle') }}

),

affinity as (

    select * from {{ ref('int_traits__category_affinity') }}

),

sensitivity as (

    select * from {{ ref('int_traits__price_sensitivity') }}

)

select
    customers.customer_id,
    customers.email,
    customers.first_name,
    customers.last_name,
    coalesce(history.orders, 0) as orders,
    coalesce(history.revenue, 0) as revenue,
    history.average_order_value,
    history.first_order_at,
    history.last_order_at,
    history.days_since_last_order,
    rfm.recency_score,
    rfm.frequency_score,
    rfm.monetary_score,
    rfm.rfm_score,
    coalesce(lifecycle.lifecycle, 'prospect') as lifecycle,
    lifecycle.expected_order_interval_days,
    lifecycle.predicted_next_order_at,
    lifecycle.churn_risk,
    coalesce(lifecycle.purchase_trend, 'none') as purchase_trend,
    affinity.top_category,
    affinity.top_category_share,
    coalesce(sensitivity.discounted_orders, 0) as discounted_orders,
    sensitivity.discount_order_share,
    coalesce(sensitivity.extra_cost_exits, 0) as extra_cost_exits,
    sensitivity.price_sensitivity_score,
    coalesce(sensitivity.discount_sensitivity, 'unknown') as discount_sensitivity,
    customers.membership_tier,
    customers.email_consent_status,
    customers.is_email_bounced,
    customers.has_marked_email_as_spam,
    customers.email_engagement,
    customers.email_opens,
    customers.email_clicks,
    customers.last_email_open_at,
    customers.last_email_click_at,
    customers.instagram_sentiment
from customers
left join history on customers.customer_id = history.customer_id
left join rfm on customers.customer_id = rfm.customer_id
left join lifecycle on customers.customer_id = lifecycle.customer_id
left join affinity on customers.customer_id = affinity.customer_id
left join sensitivity on customers.customer_id = sensitivity.customer_id
