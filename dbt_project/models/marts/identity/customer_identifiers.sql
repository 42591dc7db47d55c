-- The identity map: every native identifier seen in any source, and the customer it resolves
-- to. Checkout tokens are left out (record keys, not a person's identifiers), and so is the
-- Shopify side of a storefront login, which no Shopify record exposed.
with

occurrences as (

    select * from {{ ref('int_identity__occurrences') }}

),

resolved as (

    select * from {{ ref('int_identity__resolved') }}

)

select distinct
    resolved.customer_id,
    occurrences.source,
    occurrences.id_type,
    occurrences.id_value
from occurrences
inner join resolved on occurrences.node = resolved.node
where
    occurrences.kind <> 'shopify_checkout'
    and not (occurrences.record_type = 'storefront_account' and occurrences.source = 'shopify')
