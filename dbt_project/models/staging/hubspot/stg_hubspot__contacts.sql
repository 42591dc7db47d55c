with

source as (

    select * from {{ source('hubspot', 'contacts') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as contact_id,
        nullif(cast(properties__associatedcompanyid as varchar), '') as company_id,

        ----------  strings
        cast(properties__email as varchar) as email_raw,
        {{ normalize_email('properties__email') }} as email,
        cast(properties__phone as varchar) as phone_raw,
        {{ normalize_phone('properties__phone') }} as phone,
        nullif(trim(properties__firstname), '') as first_name,
        nullif(trim(properties__lastname), '') as last_name,
        nullif(trim(properties__city), '') as city,
        nullif(trim(properties__state), '') as region,
        nullif(trim(properties__country), '') as country,
        nullif(trim(properties__zip), '') as postal_code,
        nullif(properties__lifecyclestage, '') as lifecycle_stage,
        nullif(properties__membership_tier, '') as membership_tier,

        ----------  booleans
        coalesce(cast(properties__hs_email_optout as boolean), false) as is_email_opted_out,
        coalesce(archived, false) as is_archived,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from renamed
