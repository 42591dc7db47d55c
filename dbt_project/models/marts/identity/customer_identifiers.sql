-- The identity map: every native identifier seen in any source, and the customer it resolves
-- to. Checkout tokens are left out (record keys, not a person's identifiers), and so is the
-- Shopify side of a storefront login, which no Shopify record exposed.
-- Identifiers are made distinct before they meet the map: an email on a hundred orders is
-- looked up once, not a hundred times.

with

identifiers as (

    select distinct
        node,
        source,
        id_type,
        id_value
    from {{ ref('int_identity__occurrences') }}
    where
        kind <> 'shopify_checkout'
        and not (record_type = 'storefront_account' and source = 'shopify')

),

resolved as (

    select * from {{ ref('int_identity__resolved') }}

)

select distinct
    resolved.customer_id,
    identifiers.source,
    identifiers.id_type,
    identifiers.id_value
from identifiers
inner join resolved on identifiers.node = resolved.node
