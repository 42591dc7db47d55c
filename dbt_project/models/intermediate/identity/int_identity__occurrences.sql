{#-
    Every identifier every record carries, one row per (record, identifier).

    A record is one thing a source says belongs to one person: a CRM contact, a Shopify
    customer, order or checkout, an email-platform profile, an Instagram comment, and for the
    analytics events one distinct pair (a device and the user who logged in on it, or a device
    and the checkout started on it). Identifiers that share a record are the graph's edges.

    `node` is the identifier as the graph sees it: normalized emails and phones are one node
    across sources (the same address typed into HubSpot and Shopify is one identifier), native
    ids stay per source. A value that does not normalize (a phone "n/a") keeps its raw value as
    the node, so it is still mapped, and int_identity__nodes blocks it.

    A view over its two halves: the records staging holds, kept up to date by dlt load
    (int_identity__record_occurrences), and the analytics records, rebuilt from the
    incremental device pairs (int_identity__analytics_occurrences).
-#}
{{ config(materialized='view') }}

{%- set columns = ['record_id', 'record_type', 'source', 'id_type', 'id_value', 'kind', 'node', 'seen_at'] %}

select {{ columns | join(', ') }} from {{ ref('int_identity__record_occurrences') }}
union all
select {{ columns | join(', ') }} from {{ ref('int_identity__analytics_occurrences') }}
