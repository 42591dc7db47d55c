"""What Tessera reads from Shopify's Admin REST API: endpoints, page size, lookback, start date.

Each endpoint states what its records must satisfy (`RecordRules`): the numeric fields listed
are ids, counts, quantities and stock, so a vendor that starts sending them as strings is
coerced back; money stays a decimal string, as Shopify sends it (staging casts it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from dlt.common.schema.typing import TColumnSchema, TDataType

from ingestion.common.quarantine import RecordRules

VENDOR = "shopify"
API_VERSION = "2025-01"  # the default of SOURCES__SHOPIFY__API_VERSION
PAGE_SIZE = 250  # Shopify's maximum `limit`
# Records whose `updated_at` lands late (a clock skew, a slow write on Shopify's side) are read
# again by starting each run this much before the newest `updated_at` already loaded.
LOOKBACK_SECONDS = 3600
START_DATE = datetime(2006, 1, 1, tzinfo=UTC)  # before any shop existed: the first run reads everything
# A quarantined record is fetched again on the next runs until it arrives clean, at most this often.
REPAIR_ATTEMPTS = 3


@dataclass(frozen=True)
class Endpoint:
    """One list endpoint (`/admin/api/{version}/<path>`) and the table it loads."""

    resource: str  # dlt resource and table name
    path: str
    root: str  # the JSON key of a list answer: {"orders": [...]}
    rules: RecordRules
    # Fixed filters, one listing per entry: e.g. orders need `status=any`, because Shopify's
    # default `open` leaves out every fulfilled (archived) order.
    listings: tuple[dict[str, str], ...] = ({},)
    # Nested lists loaded as child tables, with the numeric fields of their items.
    nested: dict[str, RecordRules] = field(default_factory=dict)
    # Column written into each nested item with its parent's id, so child tables join on the
    # vendor's own key (`orders__line_items.order_id`), not only on dlt's row ids.
    parent_key: str | None = None
    # Columns the marts rely on that may be null in every record of a load (a shop without
    # cancellations, guests only): declared so the table always has them, with their type.
    columns: dict[str, TColumnSchema] = field(default_factory=dict)


def _items(*numbers: str) -> RecordRules:
    return RecordRules(primary_key=(), numbers=numbers)


def _typed(data_type: TDataType, *names: str) -> dict[str, TColumnSchema]:
    return {name: {"data_type": data_type, "nullable": True} for name in names}


ENDPOINTS: dict[str, Endpoint] = {
    endpoint.resource: endpoint
    for endpoint in (
        Endpoint(
            resource="customers",
            path="customers.json",
            root="customers",
            rules=RecordRules(
                primary_key=("id",),
                timestamps=("created_at", "updated_at"),
                numbers=("id", "orders_count", "last_order_id"),
            ),
            nested={"addresses": _items("id", "customer_id")},
            columns=_typed("text", "email", "phone"),
        ),
        Endpoint(
            resource="orders",
            path="orders.json",
            root="orders",
            rules=RecordRules(
                primary_key=("id",),
                timestamps=("created_at", "updated_at", "processed_at", "closed_at", "cancelled_at"),
                numbers=("id", "order_number", "number", "customer.id"),
            ),
            listings=({"status": "any"},),
            nested={
                "line_items": _items(
                    "id", "product_id", "variant_id", "quantity", "current_quantity", "fulfillable_quantity"
                )
            },
            parent_key="order_id",
            columns={
                **_typed("timestamp", "closed_at", "cancelled_at"),
                **_typed("bigint", "customer__id"),
                **_typed("text", "email", "phone", "checkout_token", "fulfillment_status"),
            },
        ),
        Endpoint(
            resource="products",
            path="products.json",
            root="products",
            rules=RecordRules(
                primary_key=("id",),
                timestamps=("created_at", "updated_at", "published_at"),
                numbers=("id",),
            ),
            nested={
                "variants": _items(
                    "id", "product_id", "position", "inventory_item_id", "inventory_quantity", "old_inventory_quantity"
                )
            },
        ),
        Endpoint(
            resource="abandoned_checkouts",
            path="checkouts.json",
            root="checkouts",
            rules=RecordRules(
                primary_key=("id",),
                timestamps=("created_at", "updated_at", "completed_at", "closed_at"),
                numbers=("id", "total_weight", "customer.id"),
            ),
            # `open` is Shopify's default; `closed` holds the ones the merchant archived, which
            # the marts need to see as closed rather than as still abandoned.
            listings=({"status": "open"}, {"status": "closed"}),
            nested={"line_items": _items("product_id", "variant_id", "quantity", "grams")},
            parent_key="checkout_id",
            columns={
                **_typed("timestamp", "completed_at", "closed_at"),
                **_typed("bigint", "customer__id"),
                **_typed("text", "email", "phone"),
            },
        ),
    )
}
