with

source as (

    select * from {{ source('hubspot', 'companies') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as company_id,

        ----------  strings
        nullif(trim(properties__name), '') as company_name,
        nullif(lower(trim(properties__domain)), '') as company_domain,
        nullif(properties__industry, '') as industry,
        nullif(trim(properties__city), '') as city,

        ----------  booleans
        coalesce(archived, false) as is_archived,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from renamed
