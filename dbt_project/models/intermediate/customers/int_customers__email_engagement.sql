{#-
    Email engagement per customer over the last `tessera__engagement_days` (default 90) before
    the run's "now": opens and clicks in Klaviyo and Mailchimp together, and the last of each.
    `engaged` opened or clicked in the window, `dormant` received mail but did neither.
-#}

with

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where customer_id is not null

),

klaviyo_metrics as (

    select * from {{ ref('stg_klaviyo__metrics') }}

),

interactions as (

    select
        records.customer_id,
        case metrics.metric_name
            when 'Opened Email' then 'open'
            when 'Clicked Email' then 'click'
            when 'Received Email' then 'receive'
        end as interaction,
        events.occurred_at
    from {{ ref('stg_klaviyo__events') }} as events
    inner join klaviyo_metrics as metrics on events.metric_id = metrics.metric_id
    inner join records on records.record_id = 'klaviyo_profile:' || events.profile_id
    where metrics.metric_name in ('Opened Email', 'Clicked Email', 'Received Email')

    union all

    select
        records.customer_id,
        activity.action as interaction,
        activity.occurred_at
    from {{ ref('stg_mailchimp__email_activities') }} as activity
    inner join {{ ref('stg_mailchimp__members') }} as members
        on activity.list_id = members.list_id and activity.member_id = members.member_id
    inner join records on records.record_id = 'mailchimp_member:' || members.unique_email_id
    where activity.action in ('open', 'click')

),

windowed as (

    select * from interactions
    where
        occurred_at <= {{ tessera_now() }}
        and occurred_at > {{ tessera_now() }} - to_days({{ var('tessera__engagement_days') }})

)

select
    customer_id,
    count(*) filter (where interaction = 'open') as email_opens,
    count(*) filter (where interaction = 'click') as email_clicks,
    max(occurred_at) filter (where interaction = 'open') as last_email_open_at,
    max(occurred_at) filter (where interaction = 'click') as last_email_click_at,
    case when count(*) filter (where interaction in ('open', 'click')) > 0 then 'engaged' else 'dormant' end
        as email_engagement
from windowed
group by customer_id
