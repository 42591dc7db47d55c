with

source as (

    select * from {{ source('mailchimp', 'campaigns') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as campaign_id,
        cast(web_id as varchar) as campaign_web_id,
        cast(recipients__list_id as varchar) as list_id,

        ----------  strings
        type as campaign_type,
        status as campaign_status,
        settings__title as campaign_title,
        settings__subject_line as subject_line,
        settings__preview_text as preview_text,
        settings__from_name as from_name,
        settings__reply_to as reply_to,
        recipients__segment_text as segment_text,
        content_type,
        archive_url,

        ----------  numbers
        cast(recipients__recipient_count as integer) as recipient_count,
        cast(emails_sent as integer) as emails_sent,
        cast(report_summary__opens as integer) as opens,
        cast(report_summary__unique_opens as integer) as unique_opens,
        cast(report_summary__open_rate as double) as open_rate,
        cast(report_summary__clicks as integer) as clicks,
        cast(report_summary__subscriber_clicks as integer) as subscriber_clicks,
        cast(report_summary__click_rate as double) as click_rate,

        ----------  booleans
        coalesce(tracking__opens, false) as is_tracking_opens,
        coalesce(tracking__html_clicks, false) as is_tracking_clicks,

        ----------  timestamps
        cast(create_time as timestamptz) as created_at,
        cast(send_time as timestamptz) as sent_at

    from source

)

select * from renamed
