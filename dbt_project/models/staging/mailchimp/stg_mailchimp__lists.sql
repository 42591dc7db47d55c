-- Mailchimp audiences (the API calls them lists).
with

source as (

    select * from {{ source('mailchimp', 'lists') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as list_id,
        cast(web_id as varchar) as list_web_id,

        ----------  strings
        name as list_name,
        visibility,
        campaign_defaults__from_name as default_from_name,
        campaign_defaults__from_email as default_from_email,

        ----------  numbers
        cast(stats__member_count as integer) as member_count,
        cast(stats__unsubscribe_count as integer) as unsubscribe_count,
        cast(stats__cleaned_count as integer) as cleaned_count,
        cast(stats__campaign_count as integer) as campaign_count,
        cast(stats__open_rate as double) as open_rate,
        cast(stats__click_rate as double) as click_rate,

        ----------  booleans
        coalesce(double_optin, false) as is_double_opt_in,

        ----------  timestamps
        cast(date_created as timestamptz) as created_at,
        cast(stats__campaign_last_sent as timestamptz) as last_campaign_sent_at,
        cast(stats__last_sub_date as timestamptz) as last_subscribed_at,
        cast(stats__last_unsub_date as timestamptz) as last_unsubscribed_at

    from source

)

select * from renamed
