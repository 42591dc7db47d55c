{#-
    Each record and the customer it belongs to, for the marts that count orders, checkouts and
    events per customer. A record belongs to the customer of its identifiers that link (not
    blocked), a person's identifier before a device (a family laptop is a customer of its own);
    a record whose identifiers are all blocked (an order typed with test@test.com as a guest)
    belongs to nobody, and says so with a null customer.
-#}

with

occurrences as (

    select * from {{ ref('int_identity__occurrences') }}

),

resolved as (

    select * from {{ ref('int_identity__resolved') }}

)

select
    occurrences.record_id,
    any_value(occurrences.record_type) as record_type,
    arg_min(
        resolved.customer_id,
        (resolved.is_blocked, occurrences.kind = 'mixpanel_device', occurrences.node)
    ) filter (where not resolved.is_blocked) as customer_id
from occurrences
inner join resolved on occurrences.node = resolved.node
group by occurrences.record_id
