{#-
    Which audience each email campaign was sent to: the Klaviyo lists a campaign included
    (its `audiences`), the Mailchimp audience (list) a campaign went to. One row per campaign
    and audience; a Klaviyo campaign to two lists has two rows.
-#}

with

klaviyo as (

    select
        'klaviyo' as platform,
        campaigns.campaign_id,
        unnest(json_extract_string(campaigns.audiences, '$.included[*]')) as list_id
    from {{ ref('stg_klaviyo__campaigns') }} as campaigns

),

mailchimp as (

    select
        'mailchimp' as platform,
        campaign_id,
        list_id
    from {{ ref('stg_mailchimp__campaigns') }}
    where list_id is not null

),

lists as (

    select
        'klaviyo' as platform,
        list_id,
        list_name
    from {{ ref('stg_klaviyo__lists') }}
    union all
    select
        'mailchimp' as platform,
        list_id,
        list_name
    from {{ ref('stg_mailchimp__lists') }}

),

audiences as (

    select * from klaviyo
    union all
    select * from mailchimp

)

select
    audiences.platform,
    audiences.campaign_id,
    audiences.list_id,
    lists.list_name
from audiences
left join lists on audiences.platform = lists.platform and audiences.list_id = lists.list_id
