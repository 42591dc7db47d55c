"""Shopify's official Python SDK (ShopifyAPI on pyactiveresource) against the sandbox: the
session, the token header, Link-header paging with `has_next_page()`/`next_page()`, counts,
single finds and the call-limit header, compared with the store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
import shopify
from pyactiveresource.connection import UnauthorizedAccess

pytestmark = pytest.mark.sdk

VERSION = "2025-01"


def visible_count(sandbox: Any, table: str, clock: str, extra: str = "") -> int:
    sql = f"SELECT count(*) FROM '{sandbox.world}/store/{table}.parquet' WHERE created_at <= $clock {extra}"
    with duckdb.connect() as con:
        return con.execute(sql, {"clock": clock}).fetchall()[0][0]


def activate(sandbox: Any, token: str) -> None:
    """A session for the world's shop, then the site moved to the sandbox: the SDK builds
    `https://{shop}.myshopify.com/admin/api/{version}` from a session, and `site` may be any
    base URL that ends with the API version path."""
    credentials = json.loads((sandbox.world / "world.json").read_text())["credentials"]["shopify"]
    session = shopify.Session(f"{credentials['shop']}.myshopify.com", VERSION, token)
    shopify.ShopifyResource.activate_session(session)
    shopify.ShopifyResource.site = f"{sandbox.vendor_url('shopify')}/admin/api/{VERSION}"


@pytest.fixture
def sdk(sandbox: Any) -> Iterator[dict[str, Any]]:
    """An active SDK session with a roomy bucket (restored afterwards); yields the world info."""
    before = sandbox.control("GET", "limits").json()["overrides"]
    sandbox.control("PUT", "limits", json={**before, "shopify": {"rest": {"capacity": 100_000}}})
    world = json.loads((sandbox.world / "world.json").read_text())
    activate(sandbox, world["credentials"]["shopify"]["access_token"])
    yield world
    shopify.ShopifyResource.clear_session()
    sandbox.control("PUT", "limits", json=before)


def all_pages(first: Any) -> list[Any]:
    page, items = first, list(first)
    while page.has_next_page():
        page = page.next_page()
        items += list(page)
    return items


def test_customers_page_through_with_next_page(sandbox, sdk):
    customers = all_pages(shopify.Customer.find(limit=50))
    ids = [c.id for c in customers]
    expected = visible_count(sandbox, "shopify_customers", sdk["clock"])
    assert len(ids) == len(set(ids)) == expected
    assert shopify.Customer.count() == expected
    assert customers[0].email_marketing_consent.state in {"subscribed", "not_subscribed", "unsubscribed"}


def test_orders_with_status_any_and_default_open(sandbox, sdk):
    orders = all_pages(shopify.Order.find(status="any", limit=40))
    expected = visible_count(sandbox, "shopify_orders", sdk["clock"])
    assert len({o.id for o in orders}) == len(orders) == expected
    assert shopify.Order.count(status="any") == expected
    open_orders = all_pages(shopify.Order.find(limit=250))
    assert len(open_orders) == shopify.Order.count() < expected

    order = shopify.Order.find(orders[0].id)
    assert order.total_price == orders[0].total_price and order.line_items


def test_checkouts_and_products(sandbox, sdk):
    checkouts = all_pages(shopify.Checkout.find(limit=100))
    assert len(checkouts) == visible_count(sandbox, "shopify_checkouts", sdk["clock"])
    assert all(c.completed_at is None for c in checkouts)
    products = all_pages(shopify.Product.find(limit=100))
    expected = visible_count(sandbox, "shopify_products", sdk["clock"])
    assert len(products) == shopify.Product.count() == expected
    assert products[0].variants[0].inventory_quantity >= 0


def test_call_limit_header_and_previous_page(sdk):
    first = shopify.Product.find(limit=30)
    # The SDK keeps the last response on the shared connection. Header names arrive in
    # lower case (as Shopify's often do), which the SDK's `Limits` helper does not look up.
    headers = {k.lower(): v for k, v in shopify.ShopifyResource.connection.response.headers.items()}
    used, capacity = headers["x-shopify-shop-api-call-limit"].split("/")
    assert int(used) >= 1 and capacity == "100000"
    second = first.next_page(no_cache=True)
    back = second.previous_page(no_cache=True)
    assert [p.id for p in back] == [p.id for p in first]


def test_wrong_token_is_unauthorized(sandbox, sdk):
    activate(sandbox, "shpat_wrong")
    with pytest.raises(UnauthorizedAccess):
        shopify.Customer.find(limit=1)
