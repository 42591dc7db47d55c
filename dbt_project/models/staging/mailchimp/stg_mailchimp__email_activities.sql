-- One open, click or bounce of a campaign email, from the campaigns' email-activity reports.
with

source as (

    select * from {{ source('mailchimp', 'email_activity') }}

),

renamed as (

    select

        ----------  ids
        cast(activity_id as varchar) as activity_id,
        cast(campaign_id as varchar) as campaign_id,
        cast(list_id as varchar) as list_id,
        -- Mailchimp's email_id is the subscriber hash, the member's id within the list.
        cast(email_id as varchar) as member_id,

        ----------  strings
        cast(email_address as varchar) as email_raw,
        {{ normalize_email('email_address') }} as email,
        action,
        nullif(url, '') as url,
        nullif(ip, '') as ip_address,

        ----------  timestamps
        cast(timestamp as timestamptz) as occurred_at

    from source

)

select * from renamed
