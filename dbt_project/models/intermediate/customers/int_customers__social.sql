{#-
    Instagram per customer: their handle (the most recently used) and the sentiment of their
    comments on the brand's media. A comment scores +1 per positive and -1 per negative term of
    the sentiment_lexicon seed found in its lowercased text; the customer's sentiment is the
    mean score: `positive` above 0.25, `negative` below -0.25, `neutral` otherwise.
-#}

with

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where customer_id is not null

),

customer_comments as (

    select
        records.customer_id,
        comment_rows.comment_id,
        comment_rows.username,
        comment_rows.commented_at,
        lower(comment_rows.text) as comment_text
    from {{ ref('stg_instagram__comments') }} as comment_rows
    inner join records on records.record_id = 'instagram_comment:' || comment_rows.comment_id

),

scored as (

    select
        customer_comments.customer_id,
        customer_comments.comment_id,
        any_value(customer_comments.username) as username,
        any_value(customer_comments.commented_at) as commented_at,
        coalesce(sum(lexicon.polarity), 0) as score
    from customer_comments
    left join {{ ref('sentiment_lexicon') }} as lexicon
        on contains(customer_comments.comment_text, lexicon.term)
    group by customer_comments.customer_id, customer_comments.comment_id

)

select
    customer_id,
    arg_max(username, (commented_at, username)) as instagram_username,
    count(*) as instagram_comments,
    round(avg(score), 2) as instagram_sentiment_score,
    case
        when avg(score) > 0.25 then 'positive'
        when avg(score) < -0.25 then 'negative'
        else 'neutral'
    end as instagram_sentiment
from scored
group by customer_id
