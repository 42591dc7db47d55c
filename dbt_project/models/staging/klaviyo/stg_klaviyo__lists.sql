with

source as (

    select * from {{ source('klaviyo', 'lists') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as list_id,

        ----------  strings
        name as list_name,
        opt_in_process,

        ----------  timestamps
        cast(created as timestamptz) as created_at,
        cast(updated as timestamptz) as updated_at

    from source

)

select * from renamed
