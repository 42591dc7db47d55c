{#-
    One row per email campaign sent up to the run's "now", Klaviyo and Mailchimp side by side.

    - sends: recipients with a Received Email event (Klaviyo); the campaign report's emails
      sent (Mailchimp, whose activity export has no sends).
    - opens, clicks: every open and click event; unique_opens, unique_clicks: recipients with
      at least one. Rates are unique counts over sends; click_to_open_rate is unique clicks over
      unique opens.
    - unsubscribes, bounces, spam_complaints: recipients (campaign_interactions credits an
      unsubscribe without a campaign to the latest campaign the recipient received).
    - conversions, revenue: orders credited to the campaign, last touch within
      `tessera__attribution_days` of a click, else an open (campaign_attributed_orders).
-#}

with

klaviyo_campaigns as (

    select
        'klaviyo' as platform,
        campaign_id,
        campaign_name,
        cast(null as varchar) as subject_line,
        sent_at,
        cast(null as bigint) as reported_sends
    from {{ ref('stg_klaviyo__campaigns') }}

),

mailchimp_campaigns as (

    select
        'mailchimp' as platform,
        campaign_id,
        campaign_title as campaign_name,
        subject_line,
        sent_at,
        emails_sent as reported_sends
    from {{ ref('stg_mailchimp__campaigns') }}

),

campaigns as (

    select * from klaviyo_campaigns
    union all
    select * from mailchimp_campaigns

),

recipient_interactions as (

    -- Each recipient's interactions of each kind with a campaign, counted once: the distinct
    -- recipients below are these rows (one pass, not a distinct count per kind).
    select
        platform,
        campaign_id,
        interaction,
        recipient_id,
        count(*) as events
    from {{ ref('campaign_interactions') }}
    where campaign_id is not null
    group by platform, campaign_id, interaction, recipient_id

),

interactions as (

    select
        platform,
        campaign_id,
        count(recipient_id) filter (where interaction = 'send') as recorded_sends,
        cast(sum(events) filter (where interaction = 'open') as bigint) as opens,
        count(recipient_id) filter (where interaction = 'open') as unique_opens,
        cast(sum(events) filter (where interaction = 'click') as bigint) as clicks,
        count(recipient_id) filter (where interaction = 'click') as unique_clicks,
        count(recipient_id) filter (where interaction = 'unsubscribe') as unsubscribes,
        count(recipient_id) filter (where interaction = 'bounce') as bounces,
        count(recipient_id) filter (where interaction = 'spam_complaint') as spam_complaints
    from recipient_interactions
    group by platform, campaign_id

),

conversions as (

    select
        platform,
        campaign_id,
        count(*) as conversions,
        count(*) filter (where touch = 'click') as click_conversions,
        -- Summed as decimals: a sum of doubles depends on the order the rows meet, so two
        -- builds of the same orders could differ in the last digit.
        cast(sum(cast(revenue as decimal(38, 4))) as double) as revenue
    from {{ ref('campaign_attributed_orders') }}
    group by platform, campaign_id

),

audiences as (

    select
        platform,
        campaign_id,
        string_agg(list_id, ',' order by list_id) as list_ids,
        string_agg(coalesce(list_name, list_id), ', ' order by list_id) as audience_names
    from {{ ref('campaign_audiences') }}
    group by platform, campaign_id

),

counted as (

    select
        campaigns.platform,
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.subject_line,
        campaigns.sent_at,
        audiences.list_ids,
        audiences.audience_names,
        case
            when campaigns.platform = 'mailchimp' then coalesce(campaigns.reported_sends, 0)
            else coalesce(interactions.recorded_sends, 0)
        end as sends,
        coalesce(interactions.opens, 0) as opens,
        coalesce(interactions.unique_opens, 0) as unique_opens,
        coalesce(interactions.clicks, 0) as clicks,
        coalesce(interactions.unique_clicks, 0) as unique_clicks,
        coalesce(interactions.unsubscribes, 0) as unsubscribes,
        coalesce(interactions.bounces, 0) as bounces,
        coalesce(interactions.spam_complaints, 0) as spam_complaints,
        coalesce(conversions.conversions, 0) as conversions,
        coalesce(conversions.click_conversions, 0) as click_conversions,
        coalesce(conversions.revenue, 0) as revenue
    from campaigns
    left join interactions
        on campaigns.platform = interactions.platform and campaigns.campaign_id = interactions.campaign_id
    left join conversions
        on campaigns.platform = conversions.platform and campaigns.campaign_id = conversions.campaign_id
    left join audiences
        on campaigns.platform = audiences.platform and campaigns.campaign_id = audiences.campaign_id
    where campaigns.sent_at <= {{ tessera_now() }}

)

select
    *,
    unique_opens / nullif(sends, 0) as unique_open_rate,
    unique_clicks / nullif(sends, 0) as unique_click_rate,
    unique_clicks / nullif(unique_opens, 0) as click_to_open_rate,
    unsubscribes / nullif(sends, 0) as unsubscribe_rate,
    conversions / nullif(sends, 0) as conversion_rate,
    revenue / nullif(sends, 0) as revenue_per_send
from counted
