{#-
    Names, location, membership tier and CRM lifecycle stage per customer, each from the source
    that wins for that trait (survivorship), the most recently updated record within a source.

    - Names and location: the Shopify customer account first (the person keeps it up to date to
      get their orders delivered), then HubSpot, Klaviyo, Mailchimp.
    - Membership tier: HubSpot first (the CRM is where the loyalty programme is run), then the
      tier Klaviyo was sent.
    - Lifecycle stage: the most advanced stage of any of the person's HubSpot contacts (duplicate
      contacts lag behind the one sales works on).
-#}

with

records as (

    select
        record_id,
        customer_id
    from {{ ref('int_identity__records') }}
    where customer_id is not null

),

candidates as (

    select
        records.customer_id,
        1 as source_rank,
        null as tier_rank,
        c.updated_at,
        c.first_name,
        c.last_name,
        c.city,
        c.province as region,
        c.country,
        c.postal_code,
        null as membership_tier,
        null as lifecycle_stage
    from {{ ref('stg_shopify__customers') }} as c
    inner join records on records.record_id = 'shopify_customer:' || c.customer_id

    union all

    select
        records.customer_id,
        2 as source_rank,
        1 as tier_rank,
        h.updated_at,
        h.first_name,
        h.last_name,
        h.city,
        h.region,
        h.country,
        h.postal_code,
        h.membership_tier,
        h.lifecycle_stage
    from {{ ref('stg_hubspot__contacts') }} as h
    inner join records on records.record_id = 'hubspot_contact:' || h.contact_id

    union all

    select
        records.customer_id,
        3 as source_rank,
        2 as tier_rank,
        k.updated_at,
        k.first_name,
        k.last_name,
        k.city,
        k.region,
        k.country,
        k.postal_code,
        k.membership_tier,
        null as lifecycle_stage
    from {{ ref('stg_klaviyo__profiles') }} as k
    inner join records on records.record_id = 'klaviyo_profile:' || k.profile_id

    union all

    select
        records.customer_id,
        4 as source_rank,
        null as tier_rank,
        m.last_changed_at as updated_at,
        m.first_name,
        m.last_name,
        m.city,
        m.region,
        m.country,
        m.postal_code,
        null as membership_tier,
        null as lifecycle_stage
    from {{ ref('stg_mailchimp__members') }} as m
    inner join records on records.record_id = 'mailchimp_member:' || m.unique_email_id

),

ranked as (

    select
        *,
        -- Older records lose ties within a source; records as recent as each other, the value
        -- first in sort order (the choice must not change from one build to the next).
        -coalesce(epoch(updated_at), 0) as staleness,
        case lifecycle_stage
            when 'subscriber' then 1
            when 'lead' then 2
            when 'marketingqualifiedlead' then 3
            when 'salesqualifiedlead' then 4
            when 'opportunity' then 5
            when 'customer' then 6
            when 'evangelist' then 7
        end as lifecycle_rank
    from candidates

)

select
    customer_id,
    arg_min(first_name, (source_rank, staleness, first_name)) filter (where first_name is not null) as first_name,
    arg_min(last_name, (source_rank, staleness, last_name)) filter (where last_name is not null) as last_name,
    arg_min(city, (source_rank, staleness, city)) filter (where city is not null) as city,
    arg_min(region, (source_rank, staleness, region)) filter (where region is not null) as region,
    arg_min(country, (source_rank, staleness, country)) filter (where country is not null) as country,
    arg_min(postal_code, (source_rank, staleness, postal_code)) filter (where postal_code is not null) as postal_code,
    arg_min(membership_tier, (tier_rank, staleness, membership_tier)) filter (
        where membership_tier is not null
    ) as membership_tier,
    arg_max(lifecycle_stage, lifecycle_rank) filter (where lifecycle_stage is not null) as lifecycle_stage
from ranked
group by customer_id
