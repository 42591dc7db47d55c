{#-
    Every email interaction of every recipient, Klaviyo and Mailchimp together, up to the run's
    "now": one row per send, open, click, unsubscribe, bounce or spam complaint, with the
    resolved customer (null when the recipient's identifiers are all blocked).

    - Klaviyo: events whose metric (stg_klaviyo__metrics) is Received, Opened or Clicked Email,
      Unsubscribed (from Email Marketing), Bounced Email or Marked Email as Spam; `$message` is
      the campaign.
    - Mailchimp: the campaigns' email activity (open, click, bounce). Mailchimp's activity
      export has no sends, so per-recipient sends exist for Klaviyo only (campaign_performance
      takes Mailchimp sends from the campaign report); an unsubscribe is the member's status
      `unsubscribed`, dated by the member's last change.
    - An unsubscribe or spam complaint without a campaign (Klaviyo records most without
      `$message`) is credited to the latest campaign of the same platform the recipient got
      before it, within `tessera__attribution_days`: Klaviyo, the latest Received Email;
      Mailchimp, the latest campaign to the member's audience sent after they joined it.
      `is_campaign_inferred` marks these.
    - Unsubscribes Tessera made itself are not the recipient's answer to a campaign: a Mailchimp
      member Tessera unsubscribed because they had left another platform
      (`activation.suppressions`) is left out when their last change is no later than a day
      after it. Klaviyo's suppressions record no Unsubscribed event.
-#}

{%- set window_days = var('tessera__attribution_days') %}
{%- set suppressions_table = optional_relation('activation', 'suppressions') %}

with

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where customer_id is not null

),

klaviyo as (

    select
        'klaviyo' as platform,
        events.event_id as interaction_id,
        events.message_id as campaign_id,
        events.profile_id as recipient_id,
        records.customer_id,
        case metrics.metric_name
            when 'Received Email' then 'send'
            when 'Opened Email' then 'open'
            when 'Clicked Email' then 'click'
            when 'Bounced Email' then 'bounce'
            when 'Marked Email as Spam' then 'spam_complaint'
            else 'unsubscribe'
        end as interaction,
        events.occurred_at
    from {{ ref('stg_klaviyo__events') }} as events
    inner join {{ ref('stg_klaviyo__metrics') }} as metrics on events.metric_id = metrics.metric_id
    left join records on records.record_id = 'klaviyo_profile:' || events.profile_id
    where
        metrics.metric_name in (
            'Received Email',
            'Opened Email',
            'Clicked Email',
            'Bounced Email',
            'Marked Email as Spam',
            'Unsubscribed',
            'Unsubscribed from Email Marketing'
        )
        and events.occurred_at <= {{ tessera_now() }}

),

members as (

    select * from {{ ref('stg_mailchimp__members') }}

),

mailchimp_activity as (

    select
        'mailchimp' as platform,
        activity.activity_id as interaction_id,
        activity.campaign_id,
        coalesce(members.unique_email_id, activity.member_id) as recipient_id,
        records.customer_id,
        activity.action as interaction,
        activity.occurred_at
    from {{ ref('stg_mailchimp__email_activities') }} as activity
    left join members on activity.list_id = members.list_id and activity.member_id = members.member_id
    left join records on records.record_id = 'mailchimp_member:' || members.unique_email_id
    where activity.occurred_at <= {{ tessera_now() }}

),

tessera_unsubscribed as (

    -- The Mailchimp members Tessera unsubscribed (none before the first push).
    {% if suppressions_table %}
        select
            email,
            suppressed_at
        from {{ suppressions_table }}
        where destination = 'mailchimp' and result = 'ok'
    {% else %}
        select
            cast(null as varchar) as email,
            cast(null as timestamptz) as suppressed_at
        where false
    {% endif %}

),

mailchimp_unsubscribes as (

    select
        'mailchimp' as platform,
        'unsubscribe:' || members.list_id || ':' || members.member_id as interaction_id,
        campaigns.campaign_id,
        members.unique_email_id as recipient_id,
        records.customer_id,
        'unsubscribe' as interaction,
        members.last_changed_at as occurred_at
    from members
    left join records on records.record_id = 'mailchimp_member:' || members.unique_email_id
    left join {{ ref('stg_mailchimp__campaigns') }} as campaigns
        on
            members.list_id = campaigns.list_id
            and members.last_changed_at >= campaigns.sent_at
            and members.last_changed_at < campaigns.sent_at + to_days({{ window_days }})
            and coalesce(members.opted_in_at, members.created_at, campaigns.sent_at) <= campaigns.sent_at
    where
        members.status = 'unsubscribed'
        and members.last_changed_at <= {{ tessera_now() }}
        and not exists (
            select 1
            from tessera_unsubscribed
            where
                tessera_unsubscribed.email in (members.email, lower(trim(members.email_raw)))
                and members.last_changed_at < tessera_unsubscribed.suppressed_at + to_days(1)
        )
    qualify row_number() over (partition by members.list_id, members.member_id order by campaigns.sent_at desc) = 1

),

klaviyo_credited as (

    -- Klaviyo unsubscribes and complaints without `$message`: the latest email received before.
    select
        withdrawals.interaction_id,
        arg_max(sends.campaign_id, sends.occurred_at) as campaign_id
    from klaviyo as withdrawals
    inner join klaviyo as sends
        on
            withdrawals.recipient_id = sends.recipient_id
            and sends.interaction = 'send'
            and withdrawals.occurred_at >= sends.occurred_at
            and withdrawals.occurred_at < sends.occurred_at + to_days({{ window_days }})
    where withdrawals.campaign_id is null and withdrawals.interaction in ('unsubscribe', 'spam_complaint')
    group by withdrawals.interaction_id

)

select
    klaviyo.platform,
    klaviyo.interaction_id,
    coalesce(klaviyo.campaign_id, klaviyo_credited.campaign_id) as campaign_id,
    klaviyo.campaign_id is null and klaviyo_credited.campaign_id is not null as is_campaign_inferred,
    klaviyo.recipient_id,
    klaviyo.customer_id,
    klaviyo.interaction,
    klaviyo.occurred_at
from klaviyo
left join klaviyo_credited on klaviyo.interaction_id = klaviyo_credited.interaction_id

union all

select
    platform,
    interaction_id,
    campaign_id,
    false as is_campaign_inferred,
    recipient_id,
    customer_id,
    interaction,
    occurred_at
from mailchimp_activity

union all

select
    platform,
    interaction_id,
    campaign_id,
    campaign_id is not null as is_campaign_inferred,
    recipient_id,
    customer_id,
    interaction,
    occurred_at
from mailchimp_unsubscribes
