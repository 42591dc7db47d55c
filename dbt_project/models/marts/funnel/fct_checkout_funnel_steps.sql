{#-
    The checkout funnel, one row per day, device, channel, new or returning customer, guest
    checkout availability and step: how many checkouts reached the step, went on to the next,
    or were left there. Counts add up over any slice; rates are recomputed from the sums.
-#}

with

checkouts as (

    select * from {{ ref('fct_checkouts') }}

),

steps as (

    select
        unnest(['contact', 'shipping', 'payment', 'completed']) as step,
        unnest([1, 2, 3, 4]) as step_number,
        unnest(['shipping', 'payment', 'completed', null]) as next_step

),

counted as (

    select
        cast(checkouts.started_at as date) as checkout_date,
        coalesce(checkouts.device_type, 'unknown') as device_type,
        checkouts.channel,
        checkouts.customer_type,
        checkouts.is_guest_checkout_available,
        steps.step,
        steps.step_number,
        steps.next_step,
        count(*) as checkouts_reached,
        count(*) filter (where checkouts.furthest_step_number > steps.step_number) as checkouts_continued,
        count(*) filter (
            where checkouts.furthest_step_number = steps.step_number and not checkouts.is_completed
        ) as checkouts_dropped,
        sum(checkouts.cart_value) filter (
            where checkouts.furthest_step_number = steps.step_number and not checkouts.is_completed
        ) as cart_value_dropped
    from checkouts
    inner join steps on checkouts.furthest_step_number >= steps.step_number
    group by all

)

select
    checkout_date,
    device_type,
    channel,
    customer_type,
    is_guest_checkout_available,
    step,
    step_number,
    next_step,
    checkouts_reached,
    checkouts_continued,
    checkouts_dropped,
    coalesce(cart_value_dropped, 0) as cart_value_dropped,
    case when next_step is not null then checkouts_continued / checkouts_reached end as step_conversion_rate,
    case when next_step is not null then checkouts_dropped / checkouts_reached end as drop_off_rate
from counted
