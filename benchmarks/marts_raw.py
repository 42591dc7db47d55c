"""A world's raw tables written straight from its store, in the shape Tessera's loaders give them.

Loading a 1M-customer world through the vendor APIs takes hours (a Klaviyo event page at a
time, each record rendered to JSON by the sandbox and normalized back by dlt), and the marts
benchmark measures dbt, not the loaders. So the benchmark writes `raw_<vendor>` tables from the
world's Parquet store directly:

- Mixpanel events go through the loader's own parsing query (`ingestion.mixpanel.parse`), fed
  the export lines the sandbox would serve (events Mixpanel has received by the clock).
- Every other table has the columns its staging model reads, with the loader's names and types
  (checked against a warehouse the real loaders filled), and the rows the sandbox serves at the
  clock: records created by then, with consent and later changes gated on the clock the way the
  sandbox's vendor modules gate them (the Shopify visibility queries are the sandbox's own).
  Columns no staging model reads are left out; push-client writes (overlays) are not modelled.

`write_raw(con, store, clock)` writes the tables as of `clock`; `write_raw(..., since=old)`
plays the next night's loads: Mixpanel events that arrived in `(since, clock]` are appended
(the loader appends new insert ids), every other table is replaced by its state at `clock`
(what the loaders' merges on primary keys leave, since the store holds each record once).

Each row carries the `_dlt_load_id` of the load that wrote it, as dlt stamps it: a night's load
id (the clock's epoch seconds, dlt's format) on the rows that night's loads brought, which are
the new and changed ones (the loaders read from their cursors), while a row the night left as
it was keeps the load id it had. The real loaders also read again, unchanged, the records of
their lookback window (hours), so a real night stamps somewhat more rows than this.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb

from ingestion.mixpanel.parse import FAST_QUERY
from sandbox.server.vendors.shopify.resources import CHECKOUTS_SQL, ORDERS_SQL, PRODUCTS_SQL, customers_sql

# (schema, table) -> SELECT over the store's views, with $clock bound to the world's clock.
_TABLES: dict[tuple[str, str], str] = {}


def _table(schema: str, name: str, sql: str) -> None:
    _TABLES[(schema, name)] = sql


def _money(expr: str) -> str:
    return f"printf('%.2f', {expr})"


# --------------------------------------------------------------------------------------------
# Shopify (the sandbox's visibility queries; money as Shopify's decimal strings)
# --------------------------------------------------------------------------------------------

_table(
    "raw_shopify",
    "customers",
    f"""
    SELECT email, phone, id, created_ts AS created_at, updated_ts AS updated_at, first_name, last_name,
        orders_count, {_money("total_spent")} AS total_spent, last_order_id,
        CASE WHEN last_order_number IS NOT NULL THEN '#' || last_order_number END AS last_order_name,
        state, verified_email, false AS tax_exempt, tags, 'USD' AS currency,
        CASE WHEN email IS NULL THEN NULL WHEN opt_out_at IS NOT NULL THEN 'unsubscribed'
             WHEN opt_in_at IS NOT NULL THEN 'subscribed' ELSE 'not_subscribed' END
            AS email_marketing_consent__state,
        CASE WHEN email IS NOT NULL THEN 'single_opt_in' END AS email_marketing_consent__opt_in_level,
        date_trunc('second', coalesce(opt_out_at, opt_in_at)) AS email_marketing_consent__consent_updated_at,
        address ->> 'city' AS default_address__city, address ->> 'province_code' AS default_address__province,
        address ->> 'country_code' AS default_address__country, address ->> 'zip' AS default_address__zip,
        address ->> 'province_code' AS default_address__province_code,
        address ->> 'country_code' AS default_address__country_code,
        md5('customer' || id) AS _dlt_id
    FROM ({customers_sql()})
    """,
)
_table(
    "raw_shopify",
    "customers__addresses",
    """
    SELECT customer_id + 2000000000000 AS id, customer_id, first_name, last_name,
        address ->> 'address1' AS address1, address ->> 'city' AS city, address ->> 'province_code' AS province,
        address ->> 'country_code' AS country, address ->> 'zip' AS zip,
        address ->> 'province_code' AS province_code, address ->> 'country_code' AS country_code,
        true AS "default", md5('customer' || customer_id) AS _dlt_parent_id, 0 AS _dlt_list_idx,
        md5('address' || customer_id) AS _dlt_id
    FROM shopify_customers WHERE created_at <= $clock AND address IS NOT NULL
    """,
)
_table(
    "raw_shopify",
    "orders",
    f"""
    SELECT closed_ts AS closed_at, NULL::timestamptz AS cancelled_at, customer_id AS customer__id, email, phone,
        checkout_token, fulfillment_status, id, '#' || order_number AS name, order_number,
        created_ts AS created_at, updated_ts AS updated_at, processed_ts AS processed_at, source_name,
        financial_status, false AS test, false AS taxes_included, currency,
        {_money("subtotal_price")} AS subtotal_price, {_money("subtotal_price")} AS total_line_items_price,
        '0.00' AS total_discounts, {_money("total_tax")} AS total_tax, {_money("total_price")} AS total_price,
        shipping_address ->> 'city' AS shipping_address__city, shipping_address ->> 'zip' AS shipping_address__zip,
        shipping_address ->> 'province_code' AS shipping_address__province_code,
        shipping_address ->> 'country_code' AS shipping_address__country_code,
        json_object('amount', {_money("total_shipping")}, 'currency_code', currency)
            AS total_shipping_price_set__shop_money,
        md5('order' || id) AS _dlt_id
    FROM ({ORDERS_SQL})
    """,
)
_LINE_ITEMS = """
    SELECT {parent} AS parent_id, updated_at > created_at AND updated_at <= $clock AS fulfilled,
        unnest(from_json(line_items, '["json"]')) AS item
    FROM {table} WHERE created_at <= $clock
"""
_table(
    "raw_shopify",
    "orders__line_items",
    f"""
    SELECT (item ->> 'id')::BIGINT AS id, (item ->> 'product_id')::BIGINT AS product_id,
        (item ->> 'variant_id')::BIGINT AS variant_id, item ->> 'title' AS title, item ->> 'title' AS name,
        item ->> 'sku' AS sku, (item ->> 'quantity')::BIGINT AS quantity,
        (item ->> 'quantity')::BIGINT AS current_quantity,
        CASE WHEN fulfilled THEN 0 ELSE (item ->> 'quantity')::BIGINT END AS fulfillable_quantity,
        CASE WHEN fulfilled THEN 'fulfilled' END AS fulfillment_status,
        item ->> 'price' AS price, '0.00' AS total_discount, false AS gift_card, true AS requires_shipping,
        true AS taxable, true AS product_exists, parent_id AS order_id,
        md5('order' || parent_id) AS _dlt_parent_id, md5('order_item' || (item ->> 'id')) AS _dlt_id
    FROM ({_LINE_ITEMS.format(parent="order_id", table="shopify_orders")})
    """,
)
_table(
    "raw_shopify",
    "orders__shipping_lines",
    f"""
    SELECT 'Standard' AS title, 'Standard' AS code, 'shopify' AS source, {_money("total_shipping")} AS price,
        {_money("total_shipping")} AS discounted_price, md5('order' || order_id) AS _dlt_parent_id,
        0 AS _dlt_list_idx, md5('order_shipping' || order_id) AS _dlt_id
    FROM shopify_orders WHERE created_at <= $clock AND total_shipping IS NOT NULL
    """,
)
_table(
    "raw_shopify",
    "abandoned_checkouts",
    f"""
    SELECT NULL::timestamptz AS completed_at, NULL::timestamptz AS closed_at, customer_id AS customer__id,
        email, phone, id, token, cart_token, false AS buyer_accepts_marketing, created_ts AS created_at,
        updated_ts AS updated_at, 'web' AS source_name, 'en' AS customer_locale, currency, false AS taxes_included,
        {_money("subtotal_price")} AS subtotal_price, {_money("subtotal_price")} AS total_line_items_price,
        '0.00' AS total_discounts, {_money("total_tax")} AS total_tax, {_money("total_price")} AS total_price,
        0 AS total_weight, 'https://shop.example/checkouts/' || token AS abandoned_checkout_url,
        md5('checkout' || id) AS _dlt_id
    FROM ({CHECKOUTS_SQL})
    """,
)
_table(
    "raw_shopify",
    "abandoned_checkouts__line_items",
    f"""
    SELECT item ->> 'id' AS key, (item ->> 'product_id')::BIGINT AS product_id,
        (item ->> 'variant_id')::BIGINT AS variant_id, item ->> 'title' AS title, item ->> 'sku' AS sku,
        (item ->> 'quantity')::BIGINT AS quantity, item ->> 'price' AS price,
        {_money("(item ->> 'price')::DOUBLE * (item ->> 'quantity')::BIGINT")} AS line_price,
        false AS gift_card, true AS requires_shipping, true AS taxable, 'manual' AS fulfillment_service,
        0::BIGINT AS grams, parent_id AS checkout_id,
        md5('checkout' || parent_id) AS _dlt_parent_id, md5('checkout_item' || (item ->> 'id')) AS _dlt_id
    FROM ({_LINE_ITEMS.format(parent="checkout_id", table="shopify_checkouts")})
    """,
)
_table(
    "raw_shopify",
    "abandoned_checkouts__shipping_lines",
    f"""
    SELECT 'Standard' AS title, 'Standard' AS code, 'shopify' AS source, {_money("total_shipping")} AS price,
        {_money("total_shipping")} AS discounted_price, md5('checkout' || checkout_id) AS _dlt_parent_id,
        0 AS _dlt_list_idx, md5('checkout_shipping' || checkout_id) AS _dlt_id
    FROM shopify_checkouts WHERE created_at <= $clock AND total_shipping > 0
    """,
)
_table(
    "raw_shopify",
    "products",
    f"""
    SELECT id, title, vendor, product_type, created_ts AS created_at, handle, updated_ts AS updated_at,
        published_ts AS published_at, 'web' AS published_scope, tags, status, md5('product' || id) AS _dlt_id
    FROM ({PRODUCTS_SQL})
    """,
)
_table(
    "raw_shopify",
    "products__options",
    f"""
    SELECT id + 3000000000000 AS id, id AS product_id, 'Title' AS name, 1 AS position,
        '["Default Title"]'::JSON AS "values", md5('product' || id) AS _dlt_parent_id, md5('option' || id) AS _dlt_id
    FROM ({PRODUCTS_SQL})
    """,
)
_table(
    "raw_shopify",
    "products__variants",
    f"""
    SELECT variant_id AS id, id AS product_id, 'Default Title' AS title, {_money("price")} AS price, sku,
        1 AS position, 'deny' AS inventory_policy, 'Default Title' AS option1, created_ts AS created_at,
        updated_ts AS updated_at, true AS taxable, variant_id + 1000000000000 AS inventory_item_id,
        inventory_quantity, true AS requires_shipping,
        md5('product' || id) AS _dlt_parent_id, md5('variant' || variant_id) AS _dlt_id
    FROM ({PRODUCTS_SQL})
    """,
)

# --------------------------------------------------------------------------------------------
# HubSpot (every property a string, as HubSpot serves them)
# --------------------------------------------------------------------------------------------

_table(
    "raw_hubspot",
    "contacts",
    """
    SELECT contact_id::VARCHAR AS id, date_trunc('millisecond', created_at) AS created_at,
        date_trunc('millisecond', greatest(created_at, CASE WHEN updated_at <= $clock THEN updated_at END,
                                      CASE WHEN optout_at <= $clock THEN optout_at END)) AS updated_at,
        false AS archived, city AS properties__city, country AS properties__country, email AS properties__email,
        firstname AS properties__firstname,
        CASE WHEN optout_at <= $clock THEN 'true' ELSE 'false' END AS properties__hs_email_optout,
        lastname AS properties__lastname, lifecyclestage AS properties__lifecyclestage,
        membership_tier AS properties__membership_tier, state AS properties__state, zip AS properties__zip,
        phone AS properties__phone, company_id::VARCHAR AS properties__associatedcompanyid
    FROM hubspot_contacts WHERE created_at <= $clock
    """,
)
_table(
    "raw_hubspot",
    "companies",
    """
    SELECT company_id::VARCHAR AS id, date_trunc('second', created_at) AS created_at,
        date_trunc('second', CASE WHEN updated_at <= $clock THEN updated_at ELSE created_at END) AS updated_at,
        false AS archived, city AS properties__city, domain AS properties__domain,
        industry AS properties__industry, name AS properties__name
    FROM hubspot_companies WHERE created_at <= $clock
    """,
)
_table(
    "raw_hubspot",
    "deals",
    """
    SELECT deal_id::VARCHAR AS id, date_trunc('second', created_at) AS created_at,
        date_trunc('second', CASE WHEN updated_at <= $clock THEN updated_at ELSE created_at END) AS updated_at,
        false AS archived, amount::VARCHAR AS properties__amount, closedate AS properties__closedate,
        dealname AS properties__dealname, dealstage AS properties__dealstage, pipeline AS properties__pipeline,
        md5('deal' || deal_id) AS _dlt_id
    FROM hubspot_deals WHERE created_at <= $clock
    """,
)
_table(
    "raw_hubspot",
    "deals__associations",
    """
    SELECT 'contacts' AS to_object_type, contact_id::VARCHAR AS to_id, 'deal_to_contact' AS association_type,
        md5('deal' || deal_id) AS _dlt_parent_id, md5('deal_contact' || deal_id) AS _dlt_id
    FROM hubspot_deals WHERE created_at <= $clock AND contact_id IS NOT NULL
    UNION ALL
    SELECT 'companies', company_id::VARCHAR, unnest(['deal_to_company', 'deal_to_company_unlabeled']),
        md5('deal' || deal_id), md5('deal_company' || deal_id || unnest(['a', 'b']))
    FROM hubspot_deals WHERE created_at <= $clock AND company_id IS NOT NULL
    """,
)

# --------------------------------------------------------------------------------------------
# Klaviyo (consent as of the clock: unsubscribed beats subscribed; bounces and spam complaints
# suppress without changing consent)
# --------------------------------------------------------------------------------------------

_table(
    "raw_klaviyo",
    "profiles",
    """
    WITH gated AS (
        SELECT *, CASE WHEN subscribed_at <= $clock THEN subscribed_at END AS sub,
            CASE WHEN unsubscribed_at <= $clock THEN unsubscribed_at END AS unsub,
            CASE WHEN bounced_at <= $clock THEN bounced_at END AS bounce,
            CASE WHEN spam_complaint_at <= $clock THEN spam_complaint_at END AS spam
        FROM klaviyo_profiles WHERE created_at <= $clock
    ), consent AS (
        SELECT *, CASE WHEN unsub IS NOT NULL THEN 'UNSUBSCRIBED' WHEN sub IS NOT NULL THEN 'SUBSCRIBED'
                       ELSE 'NEVER_SUBSCRIBED' END AS state,
            coalesce(unsub, sub) AS consent_at,
            list_value(CASE WHEN bounce IS NOT NULL THEN 'HARD_BOUNCE' END,
                       CASE WHEN spam IS NOT NULL THEN 'SPAM_COMPLAINT' END) AS reasons
        FROM gated
    )
    SELECT email, phone_number, NULL::VARCHAR AS external_id, first_name, last_name,
        NULL::VARCHAR AS organization, NULL::VARCHAR AS title, NULL::VARCHAR AS locale,
        city AS location__city, region AS location__region, country AS location__country, zip AS location__zip,
        NULL::VARCHAR AS location__timezone, date_trunc('second', created_at) AS created,
        date_trunc('second', greatest(created_at, sub, unsub, bounce, spam)) AS updated,
        NULL::timestamptz AS last_event_date, state AS email_marketing_consent,
        CASE WHEN consent_at IS NOT NULL THEN consent_method END AS email_marketing_method,
        NULL::VARCHAR AS email_marketing_method_detail,
        consent_at AS email_marketing_consent_timestamp,
        greatest(consent_at, bounce, spam) AS email_marketing_last_updated,
        state = 'SUBSCRIBED' AND bounce IS NULL AND spam IS NULL AS can_receive_email_marketing,
        NULL::BOOLEAN AS email_marketing_double_optin, false AS can_receive_sms_marketing,
        nullif(array_to_string(list_filter(reasons, lambda r: r IS NOT NULL), ','), '') AS email_suppression_reasons,
        'NEVER_SUBSCRIBED' AS sms_marketing_consent,
        CASE WHEN membership_tier IS NOT NULL THEN json_object('membership_tier', membership_tier)
             ELSE '{}' END::JSON AS properties,
        to_json(list_filter([
            CASE WHEN bounce IS NOT NULL THEN {'reason': 'HARD_BOUNCE', 'timestamp': bounce} END,
            CASE WHEN spam IS NOT NULL THEN {'reason': 'SPAM_COMPLAINT', 'timestamp': spam} END
        ], lambda s: s IS NOT NULL)) AS email_suppression,
        profile_id AS id
    FROM consent
    """,
)
_table(
    "raw_klaviyo",
    "events",
    """
    SELECT metric_id, profile_id, campaign_id AS message_id, event_id AS uuid,
        date_trunc('second', datetime) AS datetime, properties::JSON AS event_properties, event_id AS id
    FROM klaviyo_events WHERE datetime <= $clock
    """,
)
_table(
    "raw_klaviyo",
    "list_memberships",
    """
    SELECT date_trunc('second', joined_at) AS joined_group_at, list_id, profile_id
    FROM klaviyo_list_members WHERE joined_at <= $clock
    """,
)
_table(
    "raw_klaviyo",
    "lists",
    """
    SELECT date_trunc('second', created_at) AS created, date_trunc('second', updated_at) AS updated,
        list_id AS id, name, opt_in_process
    FROM klaviyo_lists WHERE created_at <= $clock
    """,
)
_table(
    "raw_klaviyo",
    "metrics",
    """
    SELECT date_trunc('second', created_at) AS created, date_trunc('second', updated_at) AS updated,
        metric_id AS id, name, lower(integration) AS integration__id, lower(integration) AS integration__key,
        integration AS integration__name, 'Email' AS integration__category
    FROM klaviyo_metrics
    """,
)
_table(
    "raw_klaviyo",
    "campaigns",
    """
    SELECT date_trunc('second', created_at) AS created_at, send_time AS scheduled_at,
        date_trunc('second', updated_at) AS updated_at, send_time,
        json_object('included', [list_id], 'excluded', []) AS audiences, campaign_id AS id, name, status,
        false AS archived, 'static' AS send_strategy__method, true AS tracking_options__is_tracking_clicks,
        true AS tracking_options__is_tracking_opens, true AS send_options__use_smart_sending
    FROM klaviyo_campaigns WHERE created_at <= $clock
    """,
)

# --------------------------------------------------------------------------------------------
# Mailchimp (a member's status is its latest subscribe, unsubscribe or clean by the clock)
# --------------------------------------------------------------------------------------------

_table(
    "raw_mailchimp",
    "members",
    """
    WITH gated AS (
        SELECT *, CASE WHEN subscribed_at <= $clock THEN subscribed_at END AS sub,
            CASE WHEN unsubscribed_at <= $clock THEN unsubscribed_at END AS unsub,
            CASE WHEN cleaned_at <= $clock THEN cleaned_at END AS cleaned,
            address::JSON AS addr
        FROM mailchimp_members WHERE created_at <= $clock
    )
    SELECT date_trunc('second', greatest(created_at, sub, unsub, cleaned)) AS last_changed,
        date_trunc('second', sub) AS timestamp_opt, NULL::timestamptz AS timestamp_signup,
        0.0 AS stats__avg_open_rate, 0.0 AS stats__avg_click_rate,
        md5(lower(email_address)) AS id, email_address, unique_email_id, unique_email_id AS contact_id, web_id,
        'html' AS email_type,
        CASE greatest(coalesce(sub, '-infinity'), coalesce(unsub, '-infinity'), coalesce(cleaned, '-infinity'))
            WHEN '-infinity' THEN 'pending' WHEN cleaned THEN 'cleaned' WHEN unsub THEN 'unsubscribed'
            ELSE 'subscribed' END AS status,
        2 AS member_rating, '' AS language, false AS vip, '' AS email_client,
        json_array_length(coalesce(tags, '[]')::JSON) AS tags_count, list_id,
        coalesce(first_name, '') AS merge_fields__fname, coalesce(last_name, '') AS merge_fields__lname,
        coalesce(phone, '') AS merge_fields__phone, addr ->> 'city' AS merge_fields__address__city,
        addr ->> 'state' AS merge_fields__address__state, addr ->> 'zip' AS merge_fields__address__zip,
        addr ->> 'country' AS merge_fields__address__country,
        md5('member' || list_id || lower(email_address)) AS _dlt_id
    FROM gated
    """,
)
_table(
    "raw_mailchimp",
    "members__tags",
    """
    SELECT hash(tag) % 100000 AS id, tag AS name, md5('member' || list_id || lower(email_address)) AS _dlt_parent_id,
        md5('member_tag' || list_id || lower(email_address) || tag) AS _dlt_id
    FROM (SELECT *, unnest(from_json(coalesce(tags, '[]'), '["varchar"]')) AS tag
          FROM mailchimp_members WHERE created_at <= $clock)
    """,
)
_table(
    "raw_mailchimp",
    "email_activity",
    """
    SELECT date_trunc('second', timestamp) AS timestamp,
        md5(campaign_id || lower(email_address) || action || timestamp::VARCHAR) AS activity_id, campaign_id,
        list_id, md5(lower(email_address)) AS email_id, email_address, action, '' AS ip, url
    FROM mailchimp_activity
    WHERE timestamp <= $clock AND campaign_id IS NOT NULL AND action IN ('open', 'click', 'bounce')
    """,
)
_table(
    "raw_mailchimp",
    "lists",
    """
    SELECT date_trunc('second', created_at) AS date_created, NULL::timestamptz AS stats__campaign_last_sent,
        NULL::timestamptz AS stats__last_sub_date, NULL::timestamptz AS stats__last_unsub_date,
        0.0 AS stats__open_rate, 0.0 AS stats__click_rate, list_id AS id, web_id, name, 'pub' AS visibility,
        false AS double_optin, 0 AS stats__member_count, 0 AS stats__unsubscribe_count,
        0 AS stats__cleaned_count, 0 AS stats__campaign_count, 'Northwind' AS campaign_defaults__from_name,
        'news@example.com' AS campaign_defaults__from_email
    FROM mailchimp_lists
    """,
)
_table(
    "raw_mailchimp",
    "campaigns",
    """
    SELECT send_time, date_trunc('second', created_at) AS create_time, 0.0 AS report_summary__open_rate,
        0.0 AS report_summary__click_rate, campaign_id AS id, web_id, 'regular' AS type, '' AS archive_url,
        status, 0 AS emails_sent, 'template' AS content_type, 0 AS report_summary__opens,
        0 AS report_summary__unique_opens, 0 AS report_summary__clicks, 0 AS report_summary__subscriber_clicks,
        true AS tracking__opens, true AS tracking__html_clicks, subject_line AS settings__subject_line,
        '' AS settings__preview_text, title AS settings__title, 'Northwind' AS settings__from_name,
        'news@example.com' AS settings__reply_to, list_id AS recipients__list_id, '' AS recipients__segment_text,
        0 AS recipients__recipient_count
    FROM mailchimp_campaigns WHERE created_at <= $clock
    """,
)

# --------------------------------------------------------------------------------------------
# Instagram
# --------------------------------------------------------------------------------------------

_table(
    "raw_instagram",
    "comments",
    """
    SELECT comment_id AS id, text, date_trunc('second', timestamp) AS timestamp, username, like_count, media_id,
        user_id AS from__id
    FROM instagram_comments WHERE timestamp <= $clock
    """,
)
_table(
    "raw_instagram",
    "media",
    """
    SELECT media_id AS id, caption, 0::BIGINT AS comments_count, like_count, 'FEED' AS media_product_type,
        media_type, permalink, regexp_extract(permalink, '/p/([^/]+)', 1) AS shortcode,
        date_trunc('second', timestamp) AS timestamp, 'northwind' AS username, true AS is_comment_enabled
    FROM instagram_media WHERE timestamp <= $clock
    """,
)
_table(
    "raw_instagram",
    "mentions",
    """
    SELECT media_id AS id, caption, comments_count, like_count, 'FEED' AS media_product_type, media_type,
        permalink, regexp_extract(permalink, '/p/([^/]+)', 1) AS shortcode,
        date_trunc('second', timestamp) AS timestamp, username
    FROM instagram_mentions WHERE timestamp <= $clock
    """,
)

# Export lines as the sandbox serves them: the event and its properties, received by the clock.
_MIXPANEL_LINES = """
    SELECT row_number() OVER () AS rn, json_object('event', event, 'properties', properties::JSON)::VARCHAR AS line
    FROM mixpanel_events WHERE arrived_at <= $clock AND arrived_at > $since
"""


def _store_views(con: duckdb.DuckDBPyConnection, store: Path) -> None:
    for parquet in sorted(store.glob("*.parquet")):
        con.execute(f"CREATE OR REPLACE TEMP VIEW {parquet.stem} AS SELECT * FROM read_parquet('{parquet}')")


def load_id(clock: datetime) -> str:
    """The load id dlt would give a load started at `clock` (its epoch seconds as text)."""
    return f"{clock.timestamp():.6f}"


def _events(con: duckdb.DuckDBPyConnection, clock: datetime, since: datetime | None) -> str:
    params = {"clock": clock, "since": since or datetime.min.replace(tzinfo=clock.tzinfo)}
    con.execute(f"CREATE OR REPLACE TEMP TABLE lines AS {_MIXPANEL_LINES}", params)
    stamp = f"'{load_id(clock)}' AS _dlt_load_id"
    parsed = f"SELECT * EXCLUDE (rn, _bad), {stamp}, md5(insert_id) AS _dlt_id FROM ({FAST_QUERY})"
    if since is None:
        con.execute(f"CREATE OR REPLACE TABLE raw_mixpanel.events AS {parsed}")
    else:
        con.execute(f"INSERT INTO raw_mixpanel.events BY NAME {parsed}")
    con.execute("DROP TABLE lines")
    return "raw_mixpanel.events"


def write_raw(con: duckdb.DuckDBPyConnection, store: Path, clock: datetime, since: datetime | None = None) -> dict:
    """Write every raw table as of `clock` (or the next night's loads after `since`); rows per table.

    Activity that is neither a Mixpanel event nor a Mailchimp open, click or bounce (the only
    actions the email-activity report lists) is not served by the sandbox, so it is not written."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    _store_views(con, store)
    for schema in sorted({s for s, _ in _TABLES} | {"raw_mixpanel"}):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    written = [_events(con, clock, since)]
    for (schema, name), sql in _TABLES.items():
        params = {"clock": clock} if "$clock" in sql else None
        if since is None:
            con.execute(
                f"CREATE OR REPLACE TABLE {schema}.{name} AS SELECT *, '{load_id(clock)}' AS _dlt_load_id FROM ({sql})",
                params,
            )
        else:
            _replace_keeping_load_ids(con, f"{schema}.{name}", sql, params, load_id(clock))
        written.append(f"{schema}.{name}")
    return {table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] for table in written}


def _replace_keeping_load_ids(
    con: duckdb.DuckDBPyConnection, table: str, sql: str, params: dict | None, new_load_id: str
) -> None:
    """Replace `table` by the rows of `sql`: a row equal to one the table held keeps that row's
    load id, any other row (new, or changed since) gets `new_load_id`."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _next AS {sql}", params)
    # A row is compared whole, by a hash of all its values (the same columns, in the same order,
    # as both come from `sql`); equal rows that were written twice keep the first load id.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _kept AS SELECT hash(struct_pack(*COLUMNS(* EXCLUDE (_dlt_load_id)))) "
        f"AS row_hash, min(_dlt_load_id) AS load_id FROM {table} GROUP BY ALL"
    )
    hashed = "SELECT *, hash(struct_pack(*COLUMNS(*))) AS _row_hash FROM _next"
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT n.* EXCLUDE (_row_hash), "
        f"coalesce(k.load_id, '{new_load_id}') AS _dlt_load_id FROM ({hashed}) AS n "
        "LEFT JOIN _kept AS k ON n._row_hash = k.row_hash"
    )
    con.execute("DROP TABLE _next; DROP TABLE _kept")


def world_clock(world: Path) -> datetime:
    return datetime.fromisoformat(json.loads((world / "world.json").read_text())["clock"].replace("Z", "+00:00"))
