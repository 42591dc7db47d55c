{#-
    One offer per known customer, chosen by the first rule that matches:

    1. `free_shipping` (cart_below_free_shipping): an open cart (int_traits__open_carts) below
       `tessera__free_shipping_threshold`; extra costs are what makes half of the leavers quit.
    2. `percent_discount` (price_sensitive): discount_sensitivity `high`, at
       `tessera__offer_discount_percent`.
    3. `tier_reward` (member_reward): a membership tier in `tessera__offer_reward_tiers`;
       members get store credit of `tessera__offer_tier_reward_value`, not a markdown.
    4. `percent_discount` (win_back): lifecycle `at_risk` or `lapsed`, at
       `tessera__offer_win_back_percent`.
    5. `free_shipping` (declining_trend): purchase trend `declining` and an expected basket below
       the free-shipping threshold (above it, shipping is free already).
    6. `none` (no_rule).
    A percent is capped so the discount never takes more than `tessera__offer_max_margin_share`
    of the order's gross margin: percent <= floor(max share * `tessera__gross_margin` * 100).

    expected_basket: the open cart's value, else the customer's average order value, else the
    median average order value of buyers. margin_cost, what the offer takes out of the shop's
    gross profit on that basket:
    - free_shipping: `tessera__shipping_cost` (the carrier is paid, the customer pays nothing);
    - percent_discount: basket * percent / 100 (a markdown comes off the margin in full);
    - tier_reward: reward value * (1 - gross margin) (credit is redeemed in goods, at cost);
    - none: 0.
-#}

{%- set threshold = var('tessera__free_shipping_threshold') %}
{%- set margin = var('tessera__gross_margin') %}
{%- set reward_tiers = "'" ~ var('tessera__offer_reward_tiers') | join("', '") ~ "'" %}
{#- Rounded before the floor so that 0.3 * 0.5 * 100 in floating point is 15, not 14. #}
{%- set max_percent = 'floor(round(' ~ var('tessera__offer_max_margin_share') ~ ' * ' ~ margin ~ ' * 100, 6))' %}

with

traits as (

    select * from {{ ref('customer_traits') }}

),

carts as (

    select * from {{ ref('int_traits__open_carts') }}

),

typical_basket as (

    select median(average_order_value) as basket
    from traits
    where orders > 0

),

inputs as (

    select
        traits.customer_id,
        traits.lifecycle,
        traits.purchase_trend,
        traits.discount_sensitivity,
        traits.membership_tier,
        carts.checkout_id as cart_checkout_id,
        carts.cart_value,
        coalesce(carts.cart_value, traits.average_order_value, typical_basket.basket, {{ threshold }})
            as expected_basket
    from traits
    left join carts on traits.customer_id = carts.customer_id
    cross join typical_basket

),

chosen as (

    select
        *,
        case
            when cart_value < {{ threshold }} then 'cart_below_free_shipping'
            when discount_sensitivity = 'high' then 'price_sensitive'
            when membership_tier in ({{ reward_tiers }}) then 'member_reward'
            when lifecycle in ('at_risk', 'lapsed') then 'win_back'
            when purchase_trend = 'declining' and expected_basket < {{ threshold }} then 'declining_trend'
            else 'no_rule'
        end as offer_reason
    from inputs

),

priced as (

    select
        *,
        case offer_reason
            when 'cart_below_free_shipping' then 'free_shipping'
            when 'price_sensitive' then 'percent_discount'
            when 'member_reward' then 'tier_reward'
            when 'win_back' then 'percent_discount'
            when 'declining_trend' then 'free_shipping'
            else 'none'
        end as offer_type,
        case offer_reason
            when 'price_sensitive' then least({{ var('tessera__offer_discount_percent') }}, {{ max_percent }})
            when 'win_back' then least({{ var('tessera__offer_win_back_percent') }}, {{ max_percent }})
        end as offer_percent
    from chosen

)

select
    customer_id,
    offer_type,
    cast(offer_percent as integer) as offer_percent,
    offer_reason,
    cart_checkout_id,
    cart_value,
    case when cart_value is not null then greatest({{ threshold }} - cart_value, 0) end as free_shipping_gap,
    round(expected_basket, 2) as expected_basket,
    round(expected_basket * {{ margin }}, 2) as expected_gross_margin,
    round(
        case offer_type
            when 'free_shipping' then {{ var('tessera__shipping_cost') }}
            when 'percent_discount' then expected_basket * offer_percent / 100.0
            when 'tier_reward' then {{ var('tessera__offer_tier_reward_value') }} * (1 - {{ margin }})
            else 0
        end,
        2
    ) as margin_cost,
    lifecycle,
    purchase_trend,
    discount_sensitivity,
    membership_tier
from priced
