{#-
    The merge and split log: one row per customer that, in this run, took identifiers from
    several earlier customers (merge) or lost identifiers to another (split), with the link
    and rule that caused a merge and the protection that caused a split. Appended each run.
-#}

{{ config(materialized='incremental', on_schema_change='append_new_columns') }}

with

resolved as (

    select * from {{ ref('int_identity__resolved') }}

),

edges as (

    select * from {{ ref('int_identity__edges') }}

),

-- Only customers an identifier joined or left in this run can have merged or split: a merged
-- customer holds an identifier whose customer changed, and so does a split one's other part.
-- Reading just their identifiers keeps the nightly cost to the night's changes.
changed as (

    select
        customer_id,
        previous_customer_id
    from resolved
    where customer_id <> previous_customer_id

),

moved as (

    select * from resolved
    where
        previous_customer_id is not null
        and (
            customer_id in (select changed.customer_id from changed)
            or previous_customer_id in (select changed.previous_customer_id from changed)
        )

),

merged_customers as (

    select
        customer_id,
        list_sort(list(distinct previous_customer_id)) as related_customer_ids
    from moved
    group by customer_id
    having count(distinct previous_customer_id) > 1

),

-- The strongest link inside the merged customer between identifiers of different earlier ones.
merge_links as (

    select
        a.customer_id,
        arg_min(edges.node_a, (edges.priority, edges.node_a, edges.node_b)) as node_a,
        arg_min(edges.node_b, (edges.priority, edges.node_a, edges.node_b)) as node_b,
        arg_min(edges.link_rule, (edges.priority, edges.node_a, edges.node_b)) as link_rule,
        arg_min(edges.evidence_record_id, (edges.priority, edges.node_a, edges.node_b)) as evidence_record_id
    from edges
    inner join moved as a on edges.node_a = a.node
    inner join moved as b on edges.node_b = b.node
    where
        a.customer_id = b.customer_id
        and a.previous_customer_id <> b.previous_customer_id
        and a.customer_id in (select merged_customers.customer_id from merged_customers)
    group by a.customer_id

),

split_customers as (

    select
        previous_customer_id,
        list_sort(list(distinct customer_id)) as customer_ids,
        -- The protection that kept the parts apart, when one did; otherwise the records that
        -- linked them are gone (changed at the source, or erased).
        coalesce(
            min(resolution_note),
            'the records that linked these identifiers no longer link them'
        ) as reason
    from moved
    group by previous_customer_id
    having count(distinct customer_id) > 1

),

changes as (

    select
        'merge' as change_type,
        merged_customers.customer_id,
        merged_customers.related_customer_ids,
        causes.link_rule,
        causes.node_a || ' <-> ' || causes.node_b as link,
        causes.evidence_record_id,
        null as reason
    from merged_customers
    left join merge_links as causes on merged_customers.customer_id = causes.customer_id

    union all

    select
        'split' as change_type,
        previous_customer_id as customer_id,
        customer_ids as related_customer_ids,
        null as link_rule,
        null as link,
        null as evidence_record_id,
        reason
    from split_customers

)

select
    '{{ invocation_id }}' as run_id,
    {{ tessera_now() }} as changed_at,
    change_type,
    customer_id,
    related_customer_ids,
    link_rule,
    link,
    evidence_record_id,
    reason
from changes
