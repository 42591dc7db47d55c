with

source as (

    select * from {{ source('shopify', 'products') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as product_id,

        ----------  strings
        title as product_title,
        handle,
        vendor,
        product_type,
        nullif(tags, '') as tags,
        status as product_status,
        published_scope,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(published_at as timestamptz) as published_at,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from renamed
