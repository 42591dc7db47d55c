"""Column schemas of the world's store tables (`<world>/store/<table>.parquet`).

The store holds the whole generated horizon; the sandbox server gates every row by the world
clock. Columns starting with `_` are ground truth and are never served by any vendor API.
Nested vendor objects (line items, addresses, variants) are JSON text: the server parses them
per page, which keeps the Parquet files flat and fast to scan.
"""

import pyarrow as pa
import pyarrow.compute as pc

TS = pa.timestamp("us", tz="UTC")
S = pa.string()
INT = pa.int64()
F = pa.float64()
B = pa.bool_()

SCHEMAS: dict[str, pa.Schema] = {
    # --- ground truth -----------------------------------------------------------------
    "_persons": pa.schema(
        [
            ("person_id", S),
            ("first_name", S),
            ("last_name", S),
            ("email", S),
            ("phone", S),
            ("street", S),
            ("city", S),
            ("region", S),
            ("country", S),
            ("postal_code", S),
            ("membership_tier", S),
            ("household_id", S),
            ("is_social_only", B),
            ("is_guest_only", B),
            ("account_created_at", TS),
            ("instagram_username", S),
            ("active_from", TS),
            ("consent_source", S),
            ("consent_given_at", TS),
            ("consent_withdrawn_at", TS),
            ("withdrawn_platform", S),
            ("bounced_at", TS),
            ("spam_complaint_at", TS),
            ("erasure_requested_at", TS),
        ]
    ),
    "_checkouts": pa.schema(
        [
            ("checkout_id", S),
            ("person_id", S),
            ("started_at", TS),
            ("furthest_step", S),
            ("completed_at", TS),
            ("cart_value", F),
            ("exit_reason", S),
            ("last_activity_at", TS),
            ("guest_checkout_enabled", B),
            ("device_type", S),
            ("utm_source", S),
            ("order_id", INT),
        ]
    ),
    # --- Mixpanel ---------------------------------------------------------------------
    "mixpanel_events": pa.schema(
        [
            ("insert_id", S),
            ("event", S),
            ("time", TS),
            ("arrived_at", TS),
            ("distinct_id", S),
            ("device_id", S),
            ("user_id", S),
            ("properties", S),
            ("_person_id", S),
        ]
    ),
    # --- HubSpot ----------------------------------------------------------------------
    "hubspot_contacts": pa.schema(
        [
            ("contact_id", INT),
            ("email", S),
            ("firstname", S),
            ("lastname", S),
            ("phone", S),
            ("city", S),
            ("state", S),
            ("country", S),
            ("zip", S),
            ("lifecyclestage", S),
            ("membership_tier", S),
            ("company_id", INT),
            ("optout_at", TS),
            ("created_at", TS),
            ("updated_at", TS),
            ("_person_id", S),
        ]
    ),
    "hubspot_companies": pa.schema(
        [
            ("company_id", INT),
            ("name", S),
            ("domain", S),
            ("industry", S),
            ("city", S),
            ("created_at", TS),
            ("updated_at", TS),
        ]
    ),
    "hubspot_deals": pa.schema(
        [
            ("deal_id", INT),
            ("dealname", S),
            ("amount", F),
            ("dealstage", S),
            ("pipeline", S),
            ("closedate", TS),
            ("contact_id", INT),
            ("company_id", INT),
            ("created_at", TS),
            ("updated_at", TS),
            ("_person_id", S),
        ]
    ),
    # --- Shopify ----------------------------------------------------------------------
    "shopify_customers": pa.schema(
        [
            ("customer_id", INT),
            ("email", S),
            ("first_name", S),
            ("last_name", S),
            ("phone", S),
            ("state", S),
            ("verified_email", B),
            ("tags", S),
            ("address", S),
            ("marketing_opt_in_at", TS),
            ("marketing_opt_out_at", TS),
            ("created_at", TS),
            ("updated_at", TS),
            ("_person_id", S),
        ]
    ),
    "shopify_orders": pa.schema(
        [
            ("order_id", INT),
            ("order_number", INT),
            ("email", S),
            ("phone", S),
            ("customer_id", INT),
            ("checkout_token", S),
            ("source_name", S),
            ("financial_status", S),
            ("currency", S),
            ("subtotal_price", F),
            ("total_shipping", F),
            ("total_tax", F),
            ("total_price", F),
            ("line_items", S),
            ("shipping_address", S),
            ("created_at", TS),
            ("updated_at", TS),
            ("_person_id", S),
        ]
    ),
    "shopify_checkouts": pa.schema(
        [
            ("checkout_id", INT),
            ("token", S),
            ("cart_token", S),
            ("email", S),
            ("phone", S),
            ("customer_id", INT),
            ("currency", S),
            ("subtotal_price", F),
            ("total_shipping", F),
            ("total_tax", F),
            ("total_price", F),
            ("line_items", S),
            ("created_at", TS),
            ("updated_at", TS),
            ("_person_id", S),
        ]
    ),
    "shopify_products": pa.schema(
        [
            ("product_id", INT),
            ("title", S),
            ("handle", S),
            ("product_type", S),
            ("vendor", S),
            ("status", S),
            ("tags", S),
            ("variant_id", INT),
            ("sku", S),
            ("price", F),
            ("inventory_quantity", INT),
            ("created_at", TS),
            ("updated_at", TS),
        ]
    ),
    # --- Klaviyo ----------------------------------------------------------------------
    "klaviyo_profiles": pa.schema(
        [
            ("profile_id", S),
            ("email", S),
            ("phone_number", S),
            ("first_name", S),
            ("last_name", S),
            ("city", S),
            ("region", S),
            ("country", S),
            ("zip", S),
            ("membership_tier", S),
            ("consent_method", S),
            ("subscribed_at", TS),
            ("unsubscribed_at", TS),
            ("bounced_at", TS),
            ("spam_complaint_at", TS),
            ("created_at", TS),
            ("updated_at", TS),
            ("_person_id", S),
        ]
    ),
    "klaviyo_lists": pa.schema(
        [("list_id", S), ("name", S), ("opt_in_process", S), ("created_at", TS), ("updated_at", TS)]
    ),
    "klaviyo_list_members": pa.schema([("list_id", S), ("profile_id", S), ("joined_at", TS), ("_person_id", S)]),
    "klaviyo_metrics": pa.schema(
        [("metric_id", S), ("name", S), ("integration", S), ("created_at", TS), ("updated_at", TS)]
    ),
    "klaviyo_campaigns": pa.schema(
        [
            ("campaign_id", S),
            ("name", S),
            ("subject", S),
            ("list_id", S),
            ("status", S),
            ("send_time", TS),
            ("created_at", TS),
            ("updated_at", TS),
        ]
    ),
    "klaviyo_events": pa.schema(
        [
            ("event_id", S),
            ("metric_id", S),
            ("profile_id", S),
            ("campaign_id", S),
            ("datetime", TS),
            ("properties", S),
            ("_person_id", S),
        ]
    ),
    # --- Mailchimp --------------------------------------------------------------------
    "mailchimp_lists": pa.schema([("list_id", S), ("web_id", INT), ("name", S), ("created_at", TS)]),
    "mailchimp_members": pa.schema(
        [
            ("list_id", S),
            ("email_address", S),
            ("unique_email_id", S),
            ("web_id", INT),
            ("first_name", S),
            ("last_name", S),
            ("phone", S),
            ("address", S),
            ("ip_signup", S),
            ("tags", S),
            ("subscribed_at", TS),
            ("unsubscribed_at", TS),
            ("cleaned_at", TS),
            ("created_at", TS),
            ("_person_id", S),
        ]
    ),
    "mailchimp_campaigns": pa.schema(
        [
            ("campaign_id", S),
            ("web_id", INT),
            ("list_id", S),
            ("title", S),
            ("subject_line", S),
            ("status", S),
            ("send_time", TS),
            ("created_at", TS),
        ]
    ),
    "mailchimp_activity": pa.schema(
        [
            ("list_id", S),
            ("campaign_id", S),
            ("email_address", S),
            ("action", S),
            ("timestamp", TS),
            ("url", S),
            ("_person_id", S),
        ]
    ),
    # --- Instagram --------------------------------------------------------------------
    "instagram_media": pa.schema(
        [
            ("media_id", S),
            ("caption", S),
            ("media_type", S),
            ("permalink", S),
            ("like_count", INT),
            ("timestamp", TS),
        ]
    ),
    "instagram_comments": pa.schema(
        [
            ("comment_id", S),
            ("media_id", S),
            ("text", S),
            ("username", S),
            ("user_id", S),
            ("like_count", INT),
            ("timestamp", TS),
            ("_person_id", S),
        ]
    ),
    "instagram_mentions": pa.schema(
        [
            ("media_id", S),
            ("caption", S),
            ("media_type", S),
            ("permalink", S),
            ("username", S),
            ("like_count", INT),
            ("comments_count", INT),
            ("timestamp", TS),
            ("_person_id", S),
        ]
    ),
    # --- privacy ----------------------------------------------------------------------
    "erasure_requests": pa.schema([("request_id", S), ("email", S), ("requested_at", TS), ("_person_id", S)]),
}


def empty_columns(table: str) -> dict[str, list]:
    return {name: [] for name in SCHEMAS[table].names}


def to_arrow(table: str, columns: dict[str, list]) -> pa.Table:
    """Build an Arrow table; timestamps arrive as epoch seconds (float) or None."""
    schema = SCHEMAS[table]
    arrays = []
    for field in schema:
        values = columns[field.name]
        if field.type == TS:
            seconds = pa.array(values, type=pa.float64())
            micros = pc.cast(pc.multiply(seconds, 1_000_000.0), pa.int64(), safe=False)
            arrays.append(micros.cast(TS))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
