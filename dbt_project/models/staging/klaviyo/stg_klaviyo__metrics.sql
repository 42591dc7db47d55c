with

source as (

    select * from {{ source('klaviyo', 'metrics') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as metric_id,
        cast(integration__id as varchar) as integration_id,

        ----------  strings
        name as metric_name,
        integration__key as integration_key,
        integration__name as integration_name,
        integration__category as integration_category,

        ----------  timestamps
        cast(created as timestamptz) as created_at,
        cast(updated as timestamptz) as updated_at

    from source

)

select * from renamed
