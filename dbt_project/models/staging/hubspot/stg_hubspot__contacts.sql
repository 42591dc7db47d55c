with

source as (

    select * from {{ source('hubspot', 'contacts') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as contact_id,

        ----------  strings
        properties__email as email_raw,
        nullif(lower(trim(properties__email)), '') as email,
        properties__firstname as first_name,
        properties__lastname as last_name,
        properties__phone as phone_raw,
        properties__city as city,
        properties__state as region,
        properties__country as country,
        properties__zip as postal_code,
        properties__lifecyclestage as lifecycle_stage,
        properties__membership_tier as membership_tier,

        ----------  booleans
        coalesce(cast(properties__hs_email_optout as boolean), false) as is_email_opted_out,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from renamed
