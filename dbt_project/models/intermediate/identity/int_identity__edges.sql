{#-
    The links between identifiers: two identifiers that appear in one record belong to one
    person, unless either is blocked (int_identity__nodes).

    Each record links its identifiers to one of them (a star, not every pair: the same
    components, far fewer edges). An edge keeps the strongest rule that made it (`priority`,
    lower is stronger) and one record as evidence, which the merge log cites.

    Edges to a device are `is_device_link`: they attach a device to a person but never join two
    persons (int_identity__resolved), because a household shares a laptop.
-#}

with

occurrences as (

    select * from {{ ref('int_identity__occurrences') }}

),

linkable as (

    select
        occurrences.record_id,
        occurrences.record_type,
        occurrences.node,
        occurrences.kind,
        occurrences.seen_at
    from occurrences
    inner join {{ ref('int_identity__nodes') }} as nodes
        on occurrences.node = nodes.node
    where not nodes.is_blocked

),

anchored as (

    select
        *,
        -- The record's anchor: any fixed choice gives the same components; a non-device one
        -- keeps device links pointing from a device to a person's identifier.
        first_value(node) over (
            partition by record_id
            order by kind = 'mixpanel_device', node
        ) as anchor
    from linkable

),

edges as (

    select
        case when kind = 'mixpanel_device' then node else least(anchor, node) end as node_a,
        case when kind = 'mixpanel_device' then anchor else greatest(anchor, node) end as node_b,
        kind = 'mixpanel_device' as is_device_link,
        record_type,
        record_id,
        seen_at,
        case record_type
            when 'storefront_account' then 1
            when 'shopify_customer' then 2
            when 'hubspot_contact' then 3
            when 'klaviyo_profile' then 3
            when 'mailchimp_member' then 3
            when 'shopify_order' then 4
            when 'shopify_checkout' then 5
            when 'instagram_comment' then 6
            when 'instagram_mention' then 6
            when 'mixpanel_login' then 7
            when 'mixpanel_checkout' then 8
            else 9
        end as priority
    from anchored
    where node <> anchor

)

select
    node_a,
    node_b,
    is_device_link,
    min(priority) as priority,
    arg_min(record_type, (priority, record_id)) as link_rule,
    arg_min(record_id, (priority, record_id)) as evidence_record_id,
    min(seen_at) as first_seen_at
from edges
group by node_a, node_b, is_device_link
