-- Posts by others that tag the brand.
with

source as (

    select * from {{ source('instagram', 'mentions') }}

),

renamed as (

    select

        ----------  ids
        cast(id as varchar) as media_id,

        ----------  strings
        -- The author of the post that tags the brand.
        cast(username as varchar) as username,
        caption,
        media_type,
        media_product_type,
        permalink,
        shortcode,

        ----------  numbers
        cast(like_count as integer) as like_count,
        cast(comments_count as integer) as comments_count,

        ----------  timestamps
        cast(timestamp as timestamptz) as mentioned_at

    from source

)

select * from renamed
