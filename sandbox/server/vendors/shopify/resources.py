"""The four Shopify resources the sandbox serves: which store rows are visible at the world
clock, the filters each endpoint accepts, and which object builder renders a row.

Every visible-rows query selects `id`, `created_ts` and `updated_ts` (reported timestamps,
truncated to whole seconds as Shopify reports them, so a filter on a value read from a
response matches that response exactly) and binds `$clock`. Ground-truth columns (`_...`) are
never selected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.server.vendors.shopify.objects import (
    Record,
    Row,
    Shop,
    checkout_object,
    customer_object,
    order_object,
    product_object,
)
from sandbox.server.vendors.shopify.params import choice, text_list

#: A filter turns a query-parameter value into (SQL condition, bound parameters).
Filter = Callable[[str, str], tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class Resource:
    """One list endpoint (`/<name>.json`) with its count and, if `single`, `/<name>/{id}.json`."""

    name: str  # plural, the JSON root of a list: "customers"
    singular: str  # the JSON root of a single object: "customer"
    visible_sql: str  # SELECT of the rows visible at $clock
    build: Callable[[Row, Shop, Mapping[int, Record]], Record]
    filters: dict[str, Filter] = field(default_factory=dict)  # besides ids, since_id and dates
    defaults: dict[str, str] = field(default_factory=dict)  # filter values applied when absent
    date_params: tuple[str, ...] = ("created_at", "updated_at")
    single: bool = True
    numeric_field: str | None = None  # what the "retyped_field" drift turns into a string
    nested_customer: bool = False  # whether records embed the `customer` object


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------


def _in_list(column: str) -> Filter:
    """Comma-separated values, any of which may match (Shopify's `handle`, `status` lists)."""

    def apply(param: str, value: str) -> tuple[str, dict[str, Any]]:
        return f"{column} IN (SELECT unnest(${param}))", {param: text_list(param, value)}

    return apply


def _equals(column: str) -> Filter:
    def apply(param: str, value: str) -> tuple[str, dict[str, Any]]:
        return f"{column} = ${param}", {param: value}

    return apply


def _cases(cases: dict[str, str]) -> Filter:
    """A fixed set of accepted values, each a SQL condition (Shopify's order `status`)."""

    def apply(param: str, value: str) -> tuple[str, dict[str, Any]]:
        return cases[choice(param, value, tuple(cases))], {}

    return apply


def _financial_status(param: str, value: str) -> tuple[str, dict[str, Any]]:
    allowed = (
        "authorized",
        "pending",
        "paid",
        "partially_paid",
        "refunded",
        "voided",
        "partially_refunded",
        "any",
        "unpaid",
    )
    value = choice(param, value, allowed)
    if value == "any":
        return "TRUE", {}
    if value == "unpaid":  # Shopify: authorized, pending or partially paid
        return "financial_status IN ('authorized', 'pending', 'partially_paid')", {}
    return f"financial_status = ${param}", {param: value}


def _published_status(param: str, value: str) -> tuple[str, dict[str, Any]]:
    # Every sandbox product is published; "unpublished" therefore matches none.
    return {"published": "TRUE", "any": "TRUE", "unpublished": "FALSE"}[
        choice(param, value, ("published", "unpublished", "any"))
    ], {}


# --------------------------------------------------------------------------------------------
# Visible rows
# --------------------------------------------------------------------------------------------


def customers_sql(scope: str = "TRUE") -> str:
    """Visible customers; `scope` is a condition on `customer_id` that narrows both the
    customers and the orders aggregated for them (nested customers of one page)."""
    return _CUSTOMERS_SQL.format(scope=scope)


# A customer changes when it is created, edited, places an order, or changes email consent;
# its reported updated_at is the latest of those that happened by the clock.
_CUSTOMERS_SQL = """
SELECT c.customer_id AS id, c.email, c.first_name, c.last_name, c.phone, c.state, c.verified_email,
       c.tags, c.address,
       CASE WHEN c.marketing_opt_in_at <= $clock THEN c.marketing_opt_in_at END AS opt_in_at,
       CASE WHEN c.marketing_opt_out_at <= $clock THEN c.marketing_opt_out_at END AS opt_out_at,
       coalesce(o.orders_count, 0) AS orders_count, coalesce(o.total_spent, 0.0) AS total_spent,
       o.last_order_id, o.last_order_number,
       date_trunc('second', c.created_at) AS created_ts,
       date_trunc('second', greatest(
           c.created_at,
           CASE WHEN c.updated_at <= $clock THEN c.updated_at END,
           o.last_order_at,
           CASE WHEN c.marketing_opt_in_at <= $clock THEN c.marketing_opt_in_at END,
           CASE WHEN c.marketing_opt_out_at <= $clock THEN c.marketing_opt_out_at END
       )) AS updated_ts
FROM shopify_customers c
LEFT JOIN (
    SELECT customer_id, count(*) AS orders_count, sum(total_price) AS total_spent,
           max(created_at) AS last_order_at, arg_max(order_id, created_at) AS last_order_id,
           arg_max(order_number, created_at) AS last_order_number
    FROM shopify_orders WHERE created_at <= $clock AND {scope} GROUP BY customer_id
) o USING (customer_id)
WHERE c.created_at <= $clock AND {scope}
"""

# The store's later updated_at of an order is its fulfilment; with Shopify's default setting
# "automatically archive the order" a fulfilled order is closed then, so it drops out of the
# default `status=open` listing: a loader that forgets `status=any` misses it, as on Shopify.
ORDERS_SQL = """
SELECT order_id AS id, order_number, email, phone, customer_id, checkout_token, source_name,
       financial_status, currency, subtotal_price, total_shipping, total_tax, total_price,
       line_items, shipping_address,
       CASE WHEN updated_at > created_at AND updated_at <= $clock
            THEN date_trunc('second', updated_at) END AS closed_ts,
       CASE WHEN updated_at > created_at AND updated_at <= $clock THEN 'fulfilled' END
           AS fulfillment_status,
       date_trunc('second', created_at) AS created_ts,
       date_trunc('second', created_at) AS processed_ts,
       date_trunc('second', CASE WHEN updated_at <= $clock THEN updated_at ELSE created_at END)
           AS updated_ts
FROM shopify_orders
WHERE created_at <= $clock
"""

# The store holds only checkouts that never became orders, so every one is open (not closed
# or completed); its last activity is its updated_at.
CHECKOUTS_SQL = """
SELECT checkout_id AS id, token, cart_token, email, phone, customer_id, currency, subtotal_price,
       total_shipping, total_tax, total_price, line_items,
       date_trunc('second', created_at) AS created_ts,
       date_trunc('second', CASE WHEN updated_at <= $clock THEN updated_at ELSE created_at END)
           AS updated_ts
FROM shopify_checkouts
WHERE created_at <= $clock
"""

PRODUCTS_SQL = """
SELECT product_id AS id, title, handle, product_type, vendor, status, tags, variant_id, sku, price,
       inventory_quantity,
       date_trunc('second', created_at) AS created_ts,
       date_trunc('second', created_at) AS published_ts,
       date_trunc('second', CASE WHEN updated_at <= $clock THEN updated_at ELSE created_at END)
           AS updated_ts
FROM shopify_products
WHERE created_at <= $clock
"""


RESOURCES: dict[str, Resource] = {
    "customers": Resource(
        name="customers",
        singular="customer",
        visible_sql=customers_sql(),
        build=lambda row, shop, customers: customer_object(row),
        numeric_field="orders_count",
    ),
    "orders": Resource(
        name="orders",
        singular="order",
        visible_sql=ORDERS_SQL,
        build=order_object,
        filters={
            "status": _cases(
                {
                    "open": "closed_ts IS NULL",
                    "closed": "closed_ts IS NOT NULL",
                    "cancelled": "FALSE",
                    "any": "TRUE",
                }
            ),
            "financial_status": _financial_status,
            "fulfillment_status": _cases(
                {
                    "shipped": "fulfillment_status = 'fulfilled'",
                    "partial": "FALSE",
                    "unshipped": "fulfillment_status IS NULL",
                    "unfulfilled": "fulfillment_status IS NULL",
                    "any": "TRUE",
                }
            ),
        },
        defaults={"status": "open"},
        date_params=("created_at", "updated_at", "processed_at"),
        numeric_field="order_number",
        nested_customer=True,
    ),
    "checkouts": Resource(
        name="checkouts",
        singular="checkout",
        visible_sql=CHECKOUTS_SQL,
        build=checkout_object,
        # Shopify's abandoned checkouts are "open" until recovered or deleted; none is closed here.
        filters={"status": _cases({"open": "TRUE", "closed": "FALSE"})},
        defaults={"status": "open"},
        single=False,  # the REST API has no single abandoned-checkout endpoint
        numeric_field="total_weight",
        nested_customer=True,
    ),
    "products": Resource(
        name="products",
        singular="product",
        visible_sql=PRODUCTS_SQL,
        build=product_object,
        filters={
            "title": _equals("title"),
            "vendor": _equals("vendor"),
            "handle": _in_list("handle"),
            "product_type": _equals("product_type"),
            "status": _in_list("status"),
            "published_status": _published_status,
        },
        date_params=("created_at", "updated_at", "published_at"),
    ),
}
