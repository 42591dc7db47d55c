with

source as (

    select * from {{ source('shopify', 'customers__addresses') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as address_id,
        cast(customer_id as varchar) as customer_id,

        ----------  strings
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        nullif(trim(address1), '') as address_line_1,
        nullif(trim(city), '') as city,
        nullif(trim(province), '') as province,
        province_code,
        nullif(trim(country), '') as country,
        country_code,
        nullif(trim(zip), '') as postal_code,

        ----------  booleans
        coalesce("default", false) as is_default

    from source

)

select * from renamed
