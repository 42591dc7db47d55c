"""What Tessera reads from Mixpanel's Raw Event Export, and how much at a time."""

from __future__ import annotations

from datetime import UTC, datetime

EXPORT_PATH = "api/2.0/export"

# First day exported when the pipeline has no cursor yet (`SOURCES__MIXPANEL__START_DATE`).
START_DATE = datetime(2025, 1, 1, tzinfo=UTC)

# Events reach the export up to 5 days after they happened ("offline iOS and Android data may
# take up to 5 days to enter the raw data store", Mixpanel's export reference), so every run
# re-exports the days since (newest loaded event - LOOKBACK_DAYS); merge on the insert id keeps
# that idempotent. A shorter window would leave a phone's late events out for good.
LOOKBACK_DAYS = 5

# One query per range of days, not per day: the export allows 60 queries an hour. A range this
# long bounds what a dropped connection makes a run read again.
DAYS_PER_QUERY = 31

# The export allows 3 queries a second per project, counted over a sliding second where the
# query arrives: pacing at exactly 3/s races that window (a 429 and a second lost), so pace a
# little under it.
QUERIES_PER_SECOND = 2.5

# Lines are parsed in blocks of about this many bytes (complete lines only): each block costs
# DuckDB a fixed ~50 ms to plan, so blocks of 32 MB parse ~20% faster than blocks of 16 MB.
BLOCK_BYTES = 32 * 2**20

# Days whose export carried corrupt lines are exported again on the next runs, this many
# times at most (a day that stays corrupt at the vendor is then left to the quarantine).
REPAIR_ATTEMPTS = 3

# Columns flattened out of `properties` for the marts: (column, property, type). Every other
# property stays in the `other_properties` JSON text.
STRING_PROPERTIES = (
    ("distinct_id", "distinct_id"),
    ("device_id", "$device_id"),
    ("user_id", "$user_id"),
    ("product_id", "product_id"),
    ("sku", "sku"),
    ("name", "name"),
    ("category", "category"),
    ("cart_id", "cart_id"),
    ("checkout_id", "checkout_id"),
    ("step_name", "step_name"),
    ("order_id", "order_id"),
    ("currency", "currency"),
    ("payment_method", "payment_method"),
    ("shipping_method", "shipping_method"),
    ("os", "$os"),
    ("browser", "$browser"),
    ("device_type", "$device_type"),
    ("utm_source", "utm_source"),
    ("utm_medium", "utm_medium"),
)
DOUBLE_PROPERTIES = ("price", "value", "revenue", "total", "shipping", "tax", "fees", "discount")
INTEGER_PROPERTIES = ("quantity", "step")
BOOLEAN_PROPERTIES = ("guest_checkout_enabled",)
# Kept as JSON text: the marts read cart contents from Shopify's checkouts, not from here.
JSON_PROPERTIES = ("products",)
