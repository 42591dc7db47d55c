with

source as (

    select * from {{ source('mailchimp', 'members__tags') }}

),

-- The one join staging allows: dlt links a child row to its parent only by row id, so the
-- member's own keys (audience and subscriber hash) are carried over from the parent row.
members as (

    select
        _dlt_id,
        list_id,
        id
    from {{ source('mailchimp', 'members') }}

),

renamed as (

    select

        ----------  ids
        cast(members.list_id as varchar) as list_id,
        cast(members.id as varchar) as member_id,
        cast(source.id as varchar) as tag_id,

        ----------  strings
        source.name as tag_name

    from source
    left join members
        on source._dlt_parent_id = members._dlt_id

)

select * from renamed
