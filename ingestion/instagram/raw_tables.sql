-- The raw tables of instagram, empty, for a shop that turns it off (SOURCES__INSTAGRAM__ENABLED=false).
-- Written from a sandbox load by `python -m ingestion.raw_tables --from <warehouse>`; do not edit.
CREATE SCHEMA IF NOT EXISTS raw_instagram;
CREATE TABLE IF NOT EXISTS raw_instagram."comments" (
    "id" VARCHAR,
    "text" VARCHAR,
    "timestamp" TIMESTAMP WITH TIME ZONE,
    "username" VARCHAR,
    "like_count" BIGINT,
    "media_id" VARCHAR,
    "from__id" VARCHAR,
    "from__username" VARCHAR,
    "_dlt_load_id" VARCHAR,
    "_dlt_id" VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_instagram."media" (
    "id" VARCHAR,
    "caption" VARCHAR,
    "comments_count" BIGINT,
    "like_count" BIGINT,
    "media_product_type" VARCHAR,
    "media_type" VARCHAR,
    "permalink" VARCHAR,
    "shortcode" VARCHAR,
    "timestamp" TIMESTAMP WITH TIME ZONE,
    "username" VARCHAR,
    "is_comment_enabled" BOOLEAN,
    "_dlt_load_id" VARCHAR,
    "_dlt_id" VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_instagram."mentions" (
    "id" VARCHAR,
    "caption" VARCHAR,
    "comments_count" BIGINT,
    "like_count" BIGINT,
    "media_product_type" VARCHAR,
    "media_type" VARCHAR,
    "permalink" VARCHAR,
    "shortcode" VARCHAR,
    "timestamp" TIMESTAMP WITH TIME ZONE,
    "username" VARCHAR,
    "_dlt_load_id" VARCHAR,
    "_dlt_id" VARCHAR
);
