with

source as (

    select * from {{ source('klaviyo', 'campaigns') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as campaign_id,

        ----------  strings
        name as campaign_name,
        status as campaign_status,
        send_strategy__method as send_strategy,
        cast(audiences as varchar) as audiences,

        ----------  booleans
        coalesce(archived, false) as is_archived,
        coalesce(tracking_options__is_tracking_opens, false) as is_tracking_opens,
        coalesce(tracking_options__is_tracking_clicks, false) as is_tracking_clicks,
        coalesce(send_options__use_smart_sending, false) as is_smart_sending,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(scheduled_at as timestamptz) as scheduled_at,
        cast(send_time as timestamptz) as sent_at,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from renamed
