with

source as (

    select * from {{ source('klaviyo', 'profiles') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as profile_id,
        nullif(cast(external_id as varchar), '') as external_id,

        ----------  strings
        cast(email as varchar) as email_raw,
        {{ normalize_email('email') }} as email,
        cast(phone_number as varchar) as phone_raw,
        {{ normalize_phone('phone_number') }} as phone,
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        nullif(trim(organization), '') as organization,
        nullif(trim(title), '') as job_title,
        locale,
        nullif(trim(location__city), '') as city,
        nullif(trim(location__region), '') as region,
        nullif(trim(location__country), '') as country,
        nullif(trim(location__zip), '') as postal_code,
        location__timezone as timezone,
        -- Custom properties are the account's own; the tier is the one the marts read.
        json_extract_string(properties, '$.membership_tier') as membership_tier,
        cast(properties as varchar) as custom_properties,
        email_marketing_consent,
        email_marketing_method,
        email_marketing_method_detail,
        email_suppression_reasons,
        cast(email_suppression as varchar) as email_suppressions,
        sms_marketing_consent,

        ----------  booleans
        coalesce(can_receive_email_marketing, false) as is_email_marketable,
        email_suppression_reasons is not null as is_email_suppressed,
        -- Undeliverable: a hard bounce, or an address Klaviyo found invalid.
        coalesce(
            contains(email_suppression_reasons, 'HARD_BOUNCE') or contains(email_suppression_reasons, 'INVALID_EMAIL'),
            false
        ) as is_email_bounced,
        coalesce(contains(email_suppression_reasons, 'SPAM_COMPLAINT'), false) as has_marked_email_as_spam,
        coalesce(email_marketing_double_optin, false) as is_email_double_opted_in,
        coalesce(can_receive_sms_marketing, false) as is_sms_marketable,

        ----------  timestamps
        cast(email_marketing_consent_timestamp as timestamptz) as email_marketing_consent_at,
        cast(email_marketing_last_updated as timestamptz) as email_marketing_updated_at,
        cast(last_event_date as timestamptz) as last_event_at,
        cast(created as timestamptz) as created_at,
        cast(updated as timestamptz) as updated_at

    from source

)

select * from renamed
