{#-
    Every identifier of the graph once, and whether it may link records at all.

    Blocked identifiers keep their place in the identity map (each resolves to a customer of
    its own) but link nothing. An identifier is blocked when:
    - it is on the blocklist seed (placeholders such as test@test.com, role addresses such as
      support@, phones such as 0000000000), or is not a valid email or phone at all;
    - it is a hub: in the records it appears in, it sits beside more identifiers of one kind
      than one person has (var tessera__identity_limits). A family's shared phone beside three
      people's emails, or the shop's own address typed into many orders, would otherwise glue
      those people together. Devices are judged later, against whole persons
      (int_identity__resolved), so they are not counted here.
-#}

with

occurrences as (

    select * from {{ ref('int_identity__occurrences') }}

),

limits_config as (

    select cast('{{ var("tessera__identity_limits") | tojson }}' as json) as limits_json

),

-- var tessera__identity_limits as rows: kind, max_per_person (no row: no limit).
limits as (

    select
        limit_keys.kind,
        cast(
            json_extract_string(limits_config.limits_json, '$."' || limit_keys.kind || '"') as integer
        ) as max_per_person
    from limits_config
    cross join unnest(json_keys(limits_config.limits_json)) as limit_keys (kind)

),

blocklist as (

    select * from {{ ref('identity_blocklist') }}

),

nodes as (

    select
        node,
        kind,
        min(seen_at) as first_seen_at,
        max(seen_at) as last_seen_at,
        count(distinct record_id) as records
    from occurrences
    group by node, kind

),

listed as (

    select
        nodes.node,
        min(blocklist.reason) as reason
    from nodes
    inner join blocklist
        on
            nodes.kind = blocklist.kind
            and (
                (blocklist.match = 'exact' and nodes.node = nodes.kind || ':' || blocklist.value)
                or (
                    blocklist.match = 'local_part'
                    and split_part(substr(nodes.node, length(nodes.kind) + 2), '@', 1) = blocklist.value
                )
            )
    group by nodes.node

),

-- Shopify files every guest order under the customer account with the order's email, so the
-- account of a blocked address (test@test.com) gathers many strangers' orders: it is blocked too.
shared_accounts as (

    select
        account_row.node,
        'account of a blocked address (' || min(listed.node) || ')' as reason
    from occurrences as account_row
    inner join occurrences as address
        on account_row.record_id = address.record_id
    inner join listed on address.node = listed.node
    where account_row.record_type = 'shopify_customer' and account_row.kind = 'shopify_customer'
    group by account_row.node

),

invalid as (

    select
        node,
        case
            when node like '%:raw:%' then 'not a valid ' || kind
            when kind = 'email' and not regexp_full_match(node, 'email:[^@\s]+@[^@\s]+\.[^@\s]+')
                then 'not a valid email'
        end as reason
    from nodes

),

-- Identifiers side by side in one record, blocklisted and device ones left out.
pairs as (

    select distinct
        a.node,
        b.node as neighbour,
        b.kind as neighbour_kind
    from occurrences as a
    inner join occurrences as b
        on a.record_id = b.record_id and a.node <> b.node
    where
        a.kind <> 'mixpanel_device'
        and b.kind <> 'mixpanel_device'
        and a.node not in (select listed.node from listed)
        and b.node not in (select listed.node from listed)
        and a.node not in (select shared_accounts.node from shared_accounts)
        and b.node not in (select shared_accounts.node from shared_accounts)

),

neighbour_counts as (

    select
        node,
        neighbour_kind,
        count(*) as neighbours
    from pairs
    group by node, neighbour_kind

),

hubs as (

    select
        neighbour_counts.node,
        string_agg(
            neighbour_counts.neighbour_kind || ' ' || neighbour_counts.neighbours,
            ', ' order by neighbour_counts.neighbour_kind
        ) as neighbour_counts
    from neighbour_counts
    inner join limits on neighbour_counts.neighbour_kind = limits.kind
    where neighbour_counts.neighbours > limits.max_per_person
    group by neighbour_counts.node

)

select
    nodes.node,
    nodes.kind,
    nodes.first_seen_at,
    nodes.last_seen_at,
    nodes.records,
    coalesce(listed.reason, shared_accounts.reason, invalid.reason, hubs.node) is not null as is_blocked,
    case
        when listed.reason is not null then 'blocklist: ' || listed.reason
        when shared_accounts.reason is not null then shared_accounts.reason
        when invalid.reason is not null then invalid.reason
        when hubs.node is not null then 'hub: beside ' || hubs.neighbour_counts
    end as block_reason
from nodes
left join listed on nodes.node = listed.node
left join shared_accounts on nodes.node = shared_accounts.node
left join invalid on nodes.node = invalid.node
left join hubs on nodes.node = hubs.node
