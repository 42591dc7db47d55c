{#-
    Why shoppers leave checkout, measured from what the shop can observe, one row per cause.
    No source records a reason, so each cause is read from where and under what conditions
    shoppers leave:

    - extra_costs: left at the shipping step, the step where shipping, tax and fees first
      appear; compared between carts shown a shipping fee and carts that ship free.
    - payment: left at the payment step, where payment details are entered (declined or failed).
    - forced_account: left at the contact step when they had to sign in or create an account
      (guest checkout off, not signed in), in excess of the contact-step exit rate of shoppers
      who did not face that wall: exits_with_wall - checkouts_with_wall * rate_without_wall.
    - low_intent: every other exit at the contact step (left before any cost or account wall).
-#}

with

checkouts as (

    select * from {{ ref('fct_checkouts') }}

),

counts as (

    select
        count(*) filter (where not is_completed) as exits,
        count(*) filter (where exit_step = 'contact') as contact_exits,
        count(*) filter (where has_faced_account_wall) as wall_checkouts,
        count(*) filter (where has_faced_account_wall and exit_step = 'contact') as wall_exits,
        count(*) filter (where not has_faced_account_wall) as open_checkouts,
        count(*) filter (where not has_faced_account_wall and exit_step = 'contact') as open_exits,
        count(*) filter (where furthest_step_number >= 2) as shipping_checkouts,
        count(*) filter (where exit_step = 'shipping') as shipping_exits,
        count(*) filter (where furthest_step_number >= 2 and shipping_shown > 0) as fee_checkouts,
        count(*) filter (where exit_step = 'shipping' and shipping_shown > 0) as fee_exits,
        count(*) filter (where furthest_step_number >= 2 and shipping_shown = 0) as free_checkouts,
        count(*) filter (where exit_step = 'shipping' and shipping_shown = 0) as free_exits,
        count(*) filter (where furthest_step_number >= 3) as payment_checkouts,
        count(*) filter (where exit_step = 'payment') as payment_exits
    from checkouts

),

forced as (

    select
        *,
        greatest(
            round(wall_exits - wall_checkouts * coalesce(open_exits / nullif(open_checkouts, 0), 0)),
            0
        ) as forced_account_exits
    from counts

),

causes as (

    select
        'extra_costs' as exit_cause,
        'shipping' as exit_step,
        'left at the step where shipping, tax and fees first appear' as exit_signal,
        shipping_exits as exits_measured,
        shipping_checkouts as checkouts_exposed,
        shipping_exits / nullif(shipping_checkouts, 0) as exit_rate,
        fee_exits / nullif(fee_checkouts, 0) as exit_rate_when_exposed,
        free_exits / nullif(free_checkouts, 0) as exit_rate_when_not_exposed,
        'exposed: a shipping fee was shown; not exposed: the cart shipped free' as comparison,
        exits
    from forced

    union all

    select
        'forced_account' as exit_cause,
        'contact' as exit_step,
        'excess exits at the contact step when guest checkout was off and the shopper not signed in'
            as exit_signal,
        forced_account_exits as exits_measured,
        wall_checkouts as checkouts_exposed,
        forced_account_exits / nullif(wall_checkouts, 0) as exit_rate,
        wall_exits / nullif(wall_checkouts, 0) as exit_rate_when_exposed,
        open_exits / nullif(open_checkouts, 0) as exit_rate_when_not_exposed,
        'exposed: had to sign in or create an account; not exposed: guest checkout on or signed in' as comparison,
        exits
    from forced

    union all

    select
        'low_intent' as exit_cause,
        'contact' as exit_step,
        'other exits at the contact step, before any cost or account wall was shown' as exit_signal,
        contact_exits - forced_account_exits as exits_measured,
        wall_checkouts + open_checkouts as checkouts_exposed,
        (contact_exits - forced_account_exits) / nullif(wall_checkouts + open_checkouts, 0) as exit_rate,
        null as exit_rate_when_exposed,
        null as exit_rate_when_not_exposed,
        null as comparison,
        exits
    from forced

    union all

    select
        'payment' as exit_cause,
        'payment' as exit_step,
        'left at the payment step, where payment details are entered (declined or failed payment)' as exit_signal,
        payment_exits as exits_measured,
        payment_checkouts as checkouts_exposed,
        payment_exits / nullif(payment_checkouts, 0) as exit_rate,
        null as exit_rate_when_exposed,
        null as exit_rate_when_not_exposed,
        null as comparison,
        exits
    from forced

)

select
    exit_cause,
    exit_step,
    exit_signal,
    cast(exits_measured as bigint) as exits_measured,
    exits_measured / nullif(exits, 0) as share_of_exits,
    checkouts_exposed,
    exit_rate,
    exit_rate_when_exposed,
    exit_rate_when_not_exposed,
    comparison
from causes
