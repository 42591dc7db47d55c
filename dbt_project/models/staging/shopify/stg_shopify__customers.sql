with

source as (

    select * from {{ source('shopify', 'customers') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as customer_id,
        cast(last_order_id as varchar) as last_order_id,

        ----------  strings
        cast(email as varchar) as email_raw,
        {{ normalize_email('email') }} as email,
        cast(phone as varchar) as phone_raw,
        {{ normalize_phone('phone') }} as phone,
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        state as account_state,
        nullif(tags, '') as tags,
        currency,
        last_order_name,
        email_marketing_consent__state as email_marketing_consent,
        email_marketing_consent__opt_in_level as email_marketing_opt_in_level,
        nullif(trim(default_address__city), '') as city,
        nullif(trim(default_address__province), '') as province,
        default_address__province_code as province_code,
        nullif(trim(default_address__country), '') as country,
        default_address__country_code as country_code,
        nullif(trim(default_address__zip), '') as postal_code,

        ----------  numbers
        cast(orders_count as integer) as orders_count,
        cast(total_spent as double) as total_spent,

        ----------  booleans
        coalesce(verified_email, false) as is_email_verified,
        coalesce(tax_exempt, false) as is_tax_exempt,

        ----------  timestamps
        cast(email_marketing_consent__consent_updated_at as timestamptz) as email_marketing_consent_updated_at,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from renamed
