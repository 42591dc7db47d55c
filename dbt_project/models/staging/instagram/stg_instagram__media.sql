-- The brand's own Instagram posts.
with

source as (

    select * from {{ source('instagram', 'media') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as media_id,

        ----------  strings
        cast(username as varchar) as username,
        caption,
        media_type,
        media_product_type,
        permalink,
        shortcode,

        ----------  numbers
        cast(like_count as integer) as like_count,
        cast(comments_count as integer) as comments_count,

        ----------  booleans
        coalesce(is_comment_enabled, false) as is_comment_enabled,

        ----------  timestamps
        cast(timestamp as timestamptz) as posted_at

    from source

)

select * from renamed
