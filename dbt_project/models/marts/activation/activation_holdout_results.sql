{#-
    Does pushing an audience work? Per audience, customers who entered it and were sent
    (treated) against the deterministic share held back (holdout), intention to treat: a
    customer counts in the group they were assigned when they entered the audience
    (`activation.audience_assignments`, written by the sync engine), whether or not delivery
    succeeded. A customer converts when they order within `tessera__holdout_conversion_days`
    after entering. The lift is treated minus holdout, with a 95% confidence interval from the
    normal approximation (Wald) for the conversion rates and from the sample variances for
    revenue per customer. Entries younger than the window are counted apart (`entries_in_window`):
    their outcome is not known yet, and they are left out of the rates.
    Before the first push the ledger does not exist and this mart is empty.
-#}

{%- set assignments_table = optional_relation('activation', 'audience_assignments') -%}
{%- set window_days = var('tessera__holdout_conversion_days') %}

with

assignments as (

    {% if assignments_table %}
        select
            audience,
            customer_id,
            assignment_key,
            assignment_group,
            assigned_at
        from {{ assignments_table }}
    {% else %}
        select
            cast(null as varchar) as audience,
            cast(null as varchar) as customer_id,
            cast(null as varchar) as assignment_key,
            cast(null as varchar) as assignment_group,
            cast(null as timestamptz) as assigned_at
        where false
    {% endif %}

),

orders as (

    select * from {{ ref('int_traits__orders') }}

),

outcomes as (

    select
        assignments.audience,
        assignments.customer_id,
        assignments.assignment_key,
        assignments.assignment_group,
        assignments.assigned_at + to_days({{ window_days }}) <= {{ tessera_now() }} as is_mature,
        count(orders.order_id) > 0 as converted,
        coalesce(sum(orders.total_price), 0) as revenue
    from assignments
    left join orders
        on
            assignments.customer_id = orders.customer_id
            and assignments.assigned_at < orders.ordered_at
            and assignments.assigned_at + to_days({{ window_days }}) >= orders.ordered_at
    group by all

),

by_group as (

    select
        audience,
        count(*) filter (where assignment_group = 'treated' and is_mature) as treated_entries,
        count(*) filter (where assignment_group = 'treated' and is_mature and converted) as treated_conversions,
        avg(revenue) filter (where assignment_group = 'treated' and is_mature) as treated_revenue_per_entry,
        var_samp(revenue) filter (where assignment_group = 'treated' and is_mature) as treated_revenue_variance,
        count(*) filter (where assignment_group = 'holdout' and is_mature) as holdout_entries,
        count(*) filter (where assignment_group = 'holdout' and is_mature and converted) as holdout_conversions,
        avg(revenue) filter (where assignment_group = 'holdout' and is_mature) as holdout_revenue_per_entry,
        var_samp(revenue) filter (where assignment_group = 'holdout' and is_mature) as holdout_revenue_variance,
        count(*) filter (where not is_mature) as entries_in_window
    from outcomes
    group by audience

),

rates as (

    select
        *,
        treated_conversions / nullif(treated_entries, 0) as treated_conversion_rate,
        holdout_conversions / nullif(holdout_entries, 0) as holdout_conversion_rate
    from by_group

),

lifts as (

    select
        *,
        treated_conversion_rate - holdout_conversion_rate as conversion_lift,
        sqrt(
            treated_conversion_rate * (1 - treated_conversion_rate) / nullif(treated_entries, 0)
            + holdout_conversion_rate * (1 - holdout_conversion_rate) / nullif(holdout_entries, 0)
        ) as conversion_lift_se,
        treated_revenue_per_entry - holdout_revenue_per_entry as revenue_lift_per_entry,
        sqrt(
            treated_revenue_variance / nullif(treated_entries, 0)
            + holdout_revenue_variance / nullif(holdout_entries, 0)
        ) as revenue_lift_se
    from rates

)

select
    audience,
    treated_entries,
    treated_conversions,
    treated_conversion_rate,
    treated_revenue_per_entry,
    holdout_entries,
    holdout_conversions,
    holdout_conversion_rate,
    holdout_revenue_per_entry,
    conversion_lift,
    conversion_lift - 1.96 * conversion_lift_se as conversion_lift_ci_low,
    conversion_lift + 1.96 * conversion_lift_se as conversion_lift_ci_high,
    revenue_lift_per_entry,
    revenue_lift_per_entry - 1.96 * revenue_lift_se as revenue_lift_ci_low,
    revenue_lift_per_entry + 1.96 * revenue_lift_se as revenue_lift_ci_high,
    entries_in_window,
    {{ tessera_now() }} as evaluated_at
from lifts
