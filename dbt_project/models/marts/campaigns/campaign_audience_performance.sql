{#-
    Email performance per audience (Klaviyo list, Mailchimp audience): the campaigns sent to it
    and their totals from campaign_performance. Unique opens and clicks add up per campaign (a
    recipient who opened two campaigns counts twice), so the rates read as "per email sent".
    A Klaviyo campaign sent to several lists counts in each.
-#}

with

performance as (

    select * from {{ ref('campaign_performance') }}

),

audiences as (

    select * from {{ ref('campaign_audiences') }}

),

totals as (

    select
        audiences.platform,
        audiences.list_id,
        any_value(audiences.list_name) as list_name,
        count(*) as campaigns,
        min(performance.sent_at) as first_sent_at,
        max(performance.sent_at) as last_sent_at,
        sum(performance.sends) as sends,
        sum(performance.unique_opens) as unique_opens,
        sum(performance.unique_clicks) as unique_clicks,
        sum(performance.unsubscribes) as unsubscribes,
        sum(performance.conversions) as conversions,
        -- As decimals, so the sum does not depend on the rows' order (campaign_performance).
        cast(sum(cast(performance.revenue as decimal(38, 4))) as double) as revenue
    from audiences
    inner join performance
        on audiences.platform = performance.platform and audiences.campaign_id = performance.campaign_id
    group by audiences.platform, audiences.list_id

)

select
    *,
    unique_opens / nullif(sends, 0) as unique_open_rate,
    unique_clicks / nullif(sends, 0) as unique_click_rate,
    unsubscribes / nullif(sends, 0) as unsubscribe_rate,
    conversions / nullif(sends, 0) as conversion_rate,
    revenue / nullif(sends, 0) as revenue_per_send
from totals
