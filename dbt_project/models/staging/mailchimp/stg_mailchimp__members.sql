with

source as (

    select * from {{ source('mailchimp', 'members') }}

),

renamed as (

    select

        ----------  ids
        cast(list_id as varchar) as list_id,
        -- The subscriber hash: MD5 of the lowercased address, the member's id within a list.
        cast(id as varchar) as member_id,
        nullif(cast(unique_email_id as varchar), '') as unique_email_id,
        nullif(cast(contact_id as varchar), '') as contact_id,
        cast(web_id as varchar) as member_web_id,

        ----------  strings
        cast(email_address as varchar) as email_raw,
        {{ normalize_email('email_address') }} as email,
        cast(merge_fields__phone as varchar) as phone_raw,
        {{ normalize_phone('merge_fields__phone') }} as phone,
        nullif(trim(merge_fields__fname), '') as first_name,
        nullif(trim(merge_fields__lname), '') as last_name,
        nullif(trim(merge_fields__address__city), '') as city,
        nullif(trim(merge_fields__address__state), '') as region,
        nullif(trim(merge_fields__address__country), '') as country,
        nullif(trim(merge_fields__address__zip), '') as postal_code,
        status,
        email_type,
        nullif(language, '') as language_code,
        nullif(email_client, '') as email_client,

        ----------  numbers
        cast(member_rating as integer) as member_rating,
        cast(tags_count as integer) as tags_count,
        cast(stats__avg_open_rate as double) as avg_open_rate,
        cast(stats__avg_click_rate as double) as avg_click_rate,

        ----------  booleans
        coalesce(vip, false) as is_vip,

        ----------  timestamps
        -- When the person joined: the signup form's time, else the opt-in (imported or API-added members).
        cast(coalesce(timestamp_signup, timestamp_opt) as timestamptz) as created_at,
        cast(timestamp_signup as timestamptz) as signed_up_at,
        cast(timestamp_opt as timestamptz) as opted_in_at,
        cast(last_changed as timestamptz) as last_changed_at

    from source

)

select * from renamed
