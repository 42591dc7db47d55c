-- The raw tables of klaviyo, empty, for a shop that turns it off (SOURCES__KLAVIYO__ENABLED=false).
-- Written from a sandbox load by `python -m ingestion.raw_tables --from <warehouse>`; do not edit.
CREATE SCHEMA IF NOT EXISTS raw_klaviyo;
CREATE TABLE IF NOT EXISTS raw_klaviyo."campaigns" (
    "created_at" TIMESTAMP WITH TIME ZONE,
    "scheduled_at" TIMESTAMP WITH TIME ZONE,
    "updated_at" TIMESTAMP WITH TIME ZONE,
    "send_time" TIMESTAMP WITH TIME ZONE,
    "audiences" JSON,
    "tracking_options__custom_tracking_params" JSON,
    "id" VARCHAR,
    "name" VARCHAR,
    "status" VARCHAR,
    "archived" BOOLEAN,
    "send_strategy__method" VARCHAR,
    "send_strategy__datetime" TIMESTAMP WITH TIME ZONE,
    "send_strategy__options" JSON,
    "tracking_options__add_tracking_params" BOOLEAN,
    "tracking_options__is_tracking_clicks" BOOLEAN,
    "tracking_options__is_tracking_opens" BOOLEAN,
    "send_options__use_smart_sending" BOOLEAN,
    "_dlt_load_id" VARCHAR,
    "_dlt_id" VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_klaviyo."events" (
    "metric_id" VARCHAR,
    "profile_id" VARCHAR,
    "message_id" VARCHAR,
    "uuid" VARCHAR,
    "datetime" TIMESTAMP WITH TIME ZONE,
    "timestamp" BIGINT,
    "event_properties" JSON,
    "id" VARCHAR,
    "_dlt_load_id" VARCHAR,
    "_dlt_id" VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_klaviyo."list_memberships" (
    "joined_group_at" TIMESTAMP WITH TIME ZONE,
    "list_emptied" BOOLEAN,
    "list_id" VARCHAR,
    "profile_id" VARCHAR,
    "_dlt_load_id" VARCHAR,
    "_dlt_id" VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_klaviyo."lists" (
    "created" TIMESTAMP WITH TIME ZONE,
    "updated" TIMESTAMP WITH TIME ZONE,
    "id" VARCHAR,
    "name" VARCHAR,
    "opt_in_process" VARCHAR,
    "_dlt_load_id" VARCHAR,
    "_dlt_id" VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_klaviyo."metrics" (
    "created" TIMESTAMP WITH TIME ZONE,
    "updated" TIMESTAMP WITH TIME ZONE,
    "id" VARCHAR,
    "name" VARCHAR,
    "integration__object" VARCHAR,
    "integration__id" VARCHAR,
    "integration__key" VARCHAR,
    "integration__name" VARCHAR,
    "integration__category" VARCHAR,
    "_dlt_load_id" VARCHAR,
    "_dlt_id" VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_klaviyo."profiles" (
    "email" VARCHAR,
    "phone_number" VARCHAR,
    "external_id" VARCHAR,
    "first_name" VARCHAR,
    "last_name" VARCHAR,
    "organization" VARCHAR,
    "title" VARCHAR,
    "locale" VARCHAR,
    "image" VARCHAR,
    "location__address1" VARCHAR,
    "location__address2" VARCHAR,
    "location__city" VARCHAR,
    "location__region" VARCHAR,
    "location__country" VARCHAR,
    "location__zip" VARCHAR,
    "location__timezone" VARCHAR,
    "location__ip" VARCHAR,
    "created" TIMESTAMP WITH TIME ZONE,
    "updated" TIMESTAMP WITH TIME ZONE,
    "last_event_date" TIMESTAMP WITH TIME ZONE,
    "email_marketing_consent" VARCHAR,
    "email_marketing_method" VARCHAR,
    "email_marketing_method_detail" VARCHAR,
    "email_marketing_consent_timestamp" TIMESTAMP WITH TIME ZONE,
    "email_marketing_last_updated" TIMESTAMP WITH TIME ZONE,
    "can_receive_email_marketing" BOOLEAN,
    "email_marketing_double_optin" BOOLEAN,
    "can_receive_sms_marketing" BOOLEAN,
    "email_suppression_reasons" VARCHAR,
    "sms_marketing_consent" VARCHAR,
    "location__latitude" DOUBLE,
    "location__longitude" DOUBLE,
    "properties" JSON,
    "email_suppression" JSON,
    "email_list_suppressions" JSON,
    "id" VARCHAR,
    "_dlt_load_id" VARCHAR,
    "_dlt_id" VARCHAR
);
