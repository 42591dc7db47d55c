{#-
    The tombstone is written by the erasure asset, not by a loader: a warehouse that never
    processed an erasure has no such table yet, and reads an empty one instead.
-#}
{%- set tombstone = source('privacy', 'erased_identifiers') -%}
{%- set relation = optional_relation(tombstone.schema, tombstone.identifier) -%}

with

source as (

    {% if relation %}
        select * from {{ tombstone }}
    {% else %}
        select
            cast(null as varchar) as request_id,
            cast(null as varchar) as source,
            cast(null as varchar) as id_type,
            cast(null as varchar) as id_hash,
            cast(null as timestamptz) as erased_at
        where false
    {% endif %}

),

renamed as (

    select
        ---------- strings
        source,
        id_type,
        id_hash,
        ---------- timestamps
        min(erased_at) as erased_at
    from source
    group by source, id_type, id_hash

)

select * from renamed
