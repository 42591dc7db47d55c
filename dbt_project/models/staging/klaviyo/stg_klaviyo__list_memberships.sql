with

source as (

    select * from {{ source('klaviyo', 'list_memberships') }}

),

renamed as (

    select

        ----------  ids
        cast(list_id as varchar) as list_id,
        cast(profile_id as varchar) as profile_id,

        ----------  timestamps
        cast(joined_group_at as timestamptz) as joined_at

    from source

)

select * from renamed
