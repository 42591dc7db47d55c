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

    Incremental (`unique_key` the interaction): a run compares what the sources give now with
    the table and writes only the rows that differ. Email activity arrives late (the loaders
    read back a day and more, and hold back for records they must fetch again), and merges,
    splits and erasures move or remove recipients, so nothing is assumed about when a row can
    change: every input of a row is compared.
    - A Klaviyo row is a function of its event as recorded (campaign `$message`, recipient,
      metric, time; "now" decides which events count), its recipient's customer
      (int_identity__records) and, for an unsubscribe or complaint without `$message`, the emails
      its recipient received. So a run rewrites each event that is new or differs from the table
      as recorded, every event of a recipient whose customer is no longer the table's, and the
      unsubscribes and complaints without `$message` of each recipient with an event new,
      changed or gone (their credit may change).
    - A Mailchimp row (activity, unsubscribe) is computed whole, with its member, customer,
      credited campaign and the suppressions, and rewritten when it differs from the table's.
    - A row the sources no longer give (a member who subscribed again, an erased person's event,
      an event after a "now" moved back) is deleted: the run writes a placeholder with only its
      `interaction_id`, so delete+insert removes the row, and the post-hook the placeholder.
    Rows that match are kept as they are, and each of them is what a full refresh computes from
    the same inputs, so the table equals a full refresh. Time enters only through "now" (which
    events and member changes count) and the suppressions, both compared every run. Erasure
    finds the rows by `customer_id`, and an erased person's events are gone from the sources, so
    they do not come back (and one without a customer is deleted as gone).
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='interaction_id',
        on_schema_change='fail',
        post_hook="delete from {{ this }} where platform is null",
    )
}}

{%- set window_days = var('tessera__attribution_days') %}
{%- set suppressions_table = optional_relation('activation', 'suppressions') %}

with

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where
        customer_id is not null
        and (starts_with(record_id, 'klaviyo_profile:') or starts_with(record_id, 'mailchimp_member:'))

),

klaviyo_events as (

    -- Klaviyo's email events as recorded: the campaign is `$message`, the customer comes later.
    select
        events.event_id as interaction_id,
        events.message_id as campaign_id,
        events.profile_id as recipient_id,
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
        false as is_campaign_inferred,
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
        campaigns.campaign_id is not null as is_campaign_inferred,
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

mailchimp as (

    select * from mailchimp_activity
    union all
    select * from mailchimp_unsubscribes

),

{% if is_incremental() %}

    held_klaviyo as (

        -- The table's Klaviyo events as recorded (its credited campaigns were not).
        select
            interaction_id,
            case when is_campaign_inferred then null else campaign_id end as campaign_id,
            recipient_id,
            interaction,
            occurred_at
        from {{ this }}
        where platform = 'klaviyo'

    ),

    klaviyo_differences as (

        -- Events new, changed or gone since the table was written.
        select
            coalesce(current_events.interaction_id, held_klaviyo.interaction_id) as interaction_id,
            current_events.interaction_id is null as is_gone,
            current_events.recipient_id,
            held_klaviyo.recipient_id as held_recipient_id
        from klaviyo_events as current_events
        full outer join held_klaviyo on current_events.interaction_id = held_klaviyo.interaction_id
        where
            current_events.interaction_id is null
            or held_klaviyo.interaction_id is null
            or current_events.campaign_id is distinct from held_klaviyo.campaign_id
            or current_events.recipient_id is distinct from held_klaviyo.recipient_id
            or current_events.interaction is distinct from held_klaviyo.interaction
            or current_events.occurred_at is distinct from held_klaviyo.occurred_at

    ),

    klaviyo_touched as (

        -- Recipients with an event new, changed or gone: the credit of their unsubscribes may change.
        select recipient_id from klaviyo_differences
        union
        select held_recipient_id from klaviyo_differences

    ),

    held_recipients as (

        select distinct
            recipient_id,
            customer_id
        from {{ this }}
        where platform = 'klaviyo'

    ),

    klaviyo_moved as (

        -- Recipients whose customer is not the table's any more (a merge, a split, an erasure).
        select held_recipients.recipient_id
        from held_recipients
        left join records on records.record_id = 'klaviyo_profile:' || held_recipients.recipient_id
        where held_recipients.customer_id is distinct from records.customer_id

    ),

    held_mailchimp as (

        select
            platform,
            interaction_id,
            campaign_id,
            is_campaign_inferred,
            recipient_id,
            customer_id,
            interaction,
            occurred_at
        from {{ this }}
        where platform = 'mailchimp'

    ),

    mailchimp_changed as (

        -- Mailchimp rows new or changed since the table was written.
        select * from mailchimp
        except
        select * from held_mailchimp

    ),

    gone as (

        -- Rows the table has that the sources no longer give.
        select interaction_id from klaviyo_differences
        where is_gone
        union all
        select interaction_id from held_mailchimp
        where interaction_id not in (select mailchimp.interaction_id from mailchimp)

    ),

{% endif %}

klaviyo_rebuilt as (

    -- The events to write: all of them, or in an incremental run those new or changed, those of
    -- a recipient now on another customer, and the unsubscribes and complaints without a
    -- campaign of every recipient with an event new, changed or gone (their credit may change).
    select * from klaviyo_events
    {% if is_incremental() %}
        where
            interaction_id in (select klaviyo_differences.interaction_id from klaviyo_differences)
            or recipient_id in (select klaviyo_moved.recipient_id from klaviyo_moved)
            or (
                campaign_id is null
                and interaction in ('unsubscribe', 'spam_complaint')
                and recipient_id in (select klaviyo_touched.recipient_id from klaviyo_touched)
            )
    {% endif %}

),

klaviyo_withdrawals as (

    select * from klaviyo_rebuilt
    where campaign_id is null and interaction in ('unsubscribe', 'spam_complaint')

),

klaviyo_credited as (

    -- Klaviyo unsubscribes and complaints without `$message`: the latest email received before.
    select
        withdrawals.interaction_id,
        arg_max(sends.campaign_id, sends.occurred_at) as campaign_id
    from klaviyo_withdrawals as withdrawals
    inner join klaviyo_events as sends
        on
            withdrawals.recipient_id = sends.recipient_id
            and sends.interaction = 'send'
            and withdrawals.occurred_at >= sends.occurred_at
            and withdrawals.occurred_at < sends.occurred_at + to_days({{ window_days }})
    group by withdrawals.interaction_id

),

klaviyo as (

    select
        'klaviyo' as platform,
        events.interaction_id,
        coalesce(events.campaign_id, klaviyo_credited.campaign_id) as campaign_id,
        events.campaign_id is null and klaviyo_credited.campaign_id is not null as is_campaign_inferred,
        events.recipient_id,
        records.customer_id,
        events.interaction,
        events.occurred_at
    from klaviyo_rebuilt as events
    left join klaviyo_credited on events.interaction_id = klaviyo_credited.interaction_id
    left join records on records.record_id = 'klaviyo_profile:' || events.recipient_id

)

select * from klaviyo

union all

{% if is_incremental() %}

    select * from mailchimp_changed

    union all

    -- A placeholder for each row to delete: delete+insert removes the row, the post-hook this.
    select
        cast(null as varchar) as platform,
        interaction_id,
        cast(null as varchar) as campaign_id,
        cast(null as boolean) as is_campaign_inferred,
        cast(null as varchar) as recipient_id,
        cast(null as varchar) as customer_id,
        cast(null as varchar) as interaction,
        cast(null as timestamptz) as occurred_at
    from gone

{% else %}

    select * from mailchimp

{% endif %}
