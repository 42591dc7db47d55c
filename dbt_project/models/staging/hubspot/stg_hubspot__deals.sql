with

source as (

    select * from {{ source('hubspot', 'deals') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as deal_id,

        ----------  strings
        nullif(trim(properties__dealname), '') as deal_name,
        nullif(properties__pipeline, '') as pipeline,
        nullif(properties__dealstage, '') as deal_stage,

        ----------  numbers
        cast(nullif(properties__amount, '') as double) as amount,

        ----------  booleans
        coalesce(archived, false) as is_archived,

        ----------  timestamps
        cast(properties__closedate as timestamptz) as closed_at,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from renamed
