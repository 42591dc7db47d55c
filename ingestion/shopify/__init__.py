"""Shopify Admin REST source: customers, orders, products and abandoned checkouts.

Every resource is merged on Shopify's `id` and read incrementally on `updated_at` with the
API's own `updated_at_min` filter, starting `LOOKBACK_SECONDS` before the newest `updated_at`
already loaded (dlt keeps the cursor and moves it only when a load succeeds).

Hand-written resources rather than declarative `rest_api`: each page must be screened (and its
timestamps parsed) before dlt's incremental step sees it, and dlt's REST client sends through
`Session.send`, which would bypass the `VendorSession` retries and pacing.

Tables in `raw_shopify` (`max_table_nesting=1`: objects one level down are flattened into
columns, lists one level down become child tables, anything deeper is kept as JSON):
- `customers`, with `customers__addresses`; `default_address__*` and
  `email_marketing_consent__*` as columns;
- `orders`, with `orders__line_items` (carrying `order_id`) and `orders__shipping_lines`;
  `customer__id`, `customer__email`, ... and `shipping_address__*` as columns, the nested
  customer's own addresses and the `*_set` money bags as JSON;
- `products`, with `products__variants` (`inventory_quantity` is the stock) and `products__options`;
- `abandoned_checkouts`, with `abandoned_checkouts__line_items` (carrying `checkout_id`) and
  `abandoned_checkouts__shipping_lines`; `customer__id` as a column (null for a guest);
- `quarantine`: records that could not be loaded, with the reason (shared with other sources'
  conventions); they are fetched again on the next runs by the `quarantine_repairs` resource.
Money fields stay decimal strings as Shopify sends them; staging casts them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dlt
from dlt.sources import DltResource

from ingestion.common.http import RetryPolicy, VendorSession
from ingestion.common.pacing import Pacer, ShopifyBucketPacer
from ingestion.shopify.helpers import ShopifyApi
from ingestion.shopify.settings import API_VERSION, ENDPOINTS, LOOKBACK_SECONDS, PAGE_SIZE, START_DATE, VENDOR


@dlt.source(name="shopify", max_table_nesting=1)
def shopify_source(
    base_url: str = dlt.config.value,
    access_token: str = dlt.secrets.value,
    api_version: str = API_VERSION,
    page_size: int = PAGE_SIZE,
    retry_policy: RetryPolicy | None = None,
    pacer: Pacer | None = None,
) -> tuple[DltResource, ...]:
    """The Admin REST API of the shop at `base_url` (https://<shop>.myshopify.com for a real shop).

    Configure with `SOURCES__SHOPIFY__BASE_URL`, `SOURCES__SHOPIFY__ACCESS_TOKEN` (an Admin API
    access token with `read_customers`, `read_orders`, `read_products` and `read_all_orders`;
    without the last Shopify serves only 60 days of orders, and the orders' read warns) and
    `SOURCES__SHOPIFY__API_VERSION`, or the same keys in `.dlt/config.toml` / `.dlt/secrets.toml`.
    `retry_policy` and `pacer` default to the patient production values.
    """
    session = VendorSession(VENDOR, "access_token", retry_policy, pacer or ShopifyBucketPacer())
    session.headers.update({"X-Shopify-Access-Token": access_token, "Accept": "application/json"})
    api = ShopifyApi(session, base_url, api_version, page_size)

    def changed_since(name: str) -> DltResource:
        """A table read by `updated_at_min`; the cursor is an argument default, which dlt binds
        to the pipeline state on each run."""

        def read(
            updated_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(
                "updated_at", initial_value=START_DATE, lag=LOOKBACK_SECONDS, on_cursor_value_missing="include"
            ),
        ) -> Iterator[Any]:
            yield from api.changed(ENDPOINTS[name], updated_at)

        return dlt.resource(
            read, name=name, write_disposition="merge", primary_key="id", columns=ENDPOINTS[name].columns
        )

    customers, orders, products, abandoned_checkouts = (
        changed_since(name) for name in ("customers", "orders", "products", "abandoned_checkouts")
    )

    # Writes into the four tables above (each page names its table), hence the same hints.
    @dlt.resource(write_disposition="merge", primary_key="id")
    def quarantine_repairs() -> Iterator[Any]:
        yield from api.repair(ENDPOINTS.values())

    return quarantine_repairs, customers, orders, products, abandoned_checkouts
