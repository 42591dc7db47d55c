-- The raw tables of hubspot, empty, for a shop that turns it off (SOURCES__HUBSPOT__ENABLED=false).
-- Written from a sandbox load by `python -m ingestion.raw_tables --from <warehouse>`; do not edit.
CREATE SCHEMA IF NOT EXISTS raw_hubspot;
CREATE TABLE IF NOT EXISTS raw_hubspot."companies" (
    "id" VARCHAR,
    "created_at" TIMESTAMP WITH TIME ZONE,
    "updated_at" TIMESTAMP WITH TIME ZONE,
    "archived" BOOLEAN,
    "properties__city" VARCHAR,
    "properties__createdate" TIMESTAMP WITH TIME ZONE,
    "properties__domain" VARCHAR,
    "properties__hs_lastmodifieddate" TIMESTAMP WITH TIME ZONE,
    "properties__hs_object_id" VARCHAR,
    "properties__industry" VARCHAR,
    "properties__name" VARCHAR,
    "_dlt_load_id" VARCHAR,
    "_dlt_id" VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_hubspot."contacts" (
    "id" VARCHAR,
    "created_at" TIMESTAMP WITH TIME ZONE,
    "updated_at" TIMESTAMP WITH TIME ZONE,
    "archived" BOOLEAN,
    "properties__city" VARCHAR,
    "properties__country" VARCHAR,
    "properties__createdate" TIMESTAMP WITH TIME ZONE,
    "properties__email" VARCHAR,
    "properties__firstname" VARCHAR,
    "properties__hs_email_optout" VARCHAR,
    "properties__hs_object_id" VARCHAR,
    "properties__lastmodifieddate" TIMESTAMP WITH TIME ZONE,
    "properties__lastname" VARCHAR,
    "properties__lifecyclestage" VARCHAR,
    "properties__membership_tier" VARCHAR,
    "properties__state" VARCHAR,
    "properties__zip" VARCHAR,
    "_dlt_load_id" VARCHAR,
    "_dlt_id" VARCHAR,
    "properties__phone" VARCHAR,
    "properties__associatedcompanyid" VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_hubspot."deals" (
    "id" VARCHAR,
    "created_at" TIMESTAMP WITH TIME ZONE,
    "updated_at" TIMESTAMP WITH TIME ZONE,
    "archived" BOOLEAN,
    "properties__amount" VARCHAR,
    "properties__closedate" TIMESTAMP WITH TIME ZONE,
    "properties__createdate" TIMESTAMP WITH TIME ZONE,
    "properties__dealname" VARCHAR,
    "properties__dealstage" VARCHAR,
    "properties__hs_lastmodifieddate" TIMESTAMP WITH TIME ZONE,
    "properties__hs_object_id" VARCHAR,
    "properties__pipeline" VARCHAR,
    "_dlt_load_id" VARCHAR,
    "_dlt_id" VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_hubspot."deals__associations" (
    "to_object_type" VARCHAR,
    "to_id" VARCHAR,
    "association_type" VARCHAR,
    "_dlt_root_id" VARCHAR,
    "_dlt_parent_id" VARCHAR,
    "_dlt_list_idx" BIGINT,
    "_dlt_id" VARCHAR
);
