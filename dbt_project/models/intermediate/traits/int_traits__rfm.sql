{#-
    RFM scores of every customer with an order, relative to the run's "now": recency (how
    recently they last ordered), frequency (how many orders) and monetary (how much they spent),
    each a quintile from 1 (lowest fifth of buyers) to 5 (highest fifth).

    score = 1 + floor(5 * percent_rank), capped at 5, where percent_rank is the share of other
    buyers strictly below the customer. Customers tied on a value share the lower score: with
    most buyers on one order, they all get frequency 1 instead of being spread at random over
    several quintiles (as ntile would).
-#}

with

history as (

    select * from {{ ref('int_traits__order_history') }}

),

scored as (

    select
        customer_id,
        least(5, 1 + floor(5 * percent_rank() over (order by last_order_at))) as recency_score,
        least(5, 1 + floor(5 * percent_rank() over (order by orders))) as frequency_score,
        least(5, 1 + floor(5 * percent_rank() over (order by revenue))) as monetary_score
    from history

)

select
    customer_id,
    cast(recency_score as integer) as recency_score,
    cast(frequency_score as integer) as frequency_score,
    cast(monetary_score as integer) as monetary_score,
    cast(cast(recency_score as integer) as varchar)
    || cast(cast(frequency_score as integer) as varchar)
    || cast(cast(monetary_score as integer) as varchar) as rfm_score
from scored
