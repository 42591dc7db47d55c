with

source as (

    select * from {{ source('shopify', 'products__options') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as option_id,
        cast(product_id as varchar) as product_id,

        ----------  strings
        name as option_name,
        cast(values as varchar) as option_values,

        ----------  numbers
        cast(position as integer) as option_position

    from source

)

select * from renamed
