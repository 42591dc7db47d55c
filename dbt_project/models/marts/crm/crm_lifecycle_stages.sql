-- How many CRM contacts sit in each lifecycle stage, and how many of them can be emailed.
with

contacts as (

    select * from {{ ref('stg_hubspot__contacts') }}

),

summary as (

    select
        coalesce(lifecycle_stage, 'unknown') as lifecycle_stage,
        count(*) as contacts,
        count(distinct email) as distinct_emails,
        count(*) filter (where is_email_opted_out) as opted_out_contacts,
        max(updated_at) as last_updated_at
    from contacts
    group by 1

)

select * from summary
