with

source as (

    select * from {{ source('klaviyo', 'events') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as event_id,
        -- The metric's name lives in the metrics table; staging keeps the id and does not join.
        cast(metric_id as varchar) as metric_id,
        cast(profile_id as varchar) as profile_id,
        -- `$message`: the campaign id for a campaign send, a flow message id for a flow.
        nullif(cast(message_id as varchar), '') as message_id,
        cast(uuid as varchar) as event_uuid,

        ----------  strings
        cast(event_properties as varchar) as event_properties,

        ----------  timestamps
        cast(datetime as timestamptz) as occurred_at

    from source

)

select * from renamed
