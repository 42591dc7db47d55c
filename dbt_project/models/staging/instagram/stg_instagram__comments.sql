-- Comments on the brand's posts.
with

source as (

    select * from {{ source('instagram', 'comments') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as comment_id,
        cast(media_id as varchar) as media_id,
        -- The commenter's Instagram-scoped user id (`from.id`).
        nullif(cast(from__id as varchar), '') as user_id,

        ----------  strings
        cast(username as varchar) as username,
        text,

        ----------  numbers
        cast(like_count as integer) as like_count,

        ----------  timestamps
        cast(timestamp as timestamptz) as commented_at

    from source

)

select * from renamed
