"""The sandbox's Shopify Admin REST API, over HTTP against the live server: paging, filters,
auth, the leaky bucket, injected faults, and the world clock."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import duckdb
import pytest
import requests

VERSION = "2025-01"
TOKEN_HEADER = "X-Shopify-Access-Token"
CALL_LIMIT = "X-Shopify-Shop-Api-Call-Limit"
AUTH_ERROR = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
THROTTLED = {
    "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
}
NEXT = re.compile(r'<([^>]+)>; rel="next"')
PREVIOUS = re.compile(r'<([^>]+)>; rel="previous"')

# Visible rows per table, with the store's own columns; orders are closed (archived) once
# fulfilled, i.e. at a later updated_at that has happened by the clock.
VISIBLE_SQL = {
    resource: f"SELECT {key} AS id FROM '{{store}}/shopify_{resource}.parquet' WHERE created_at <= $clock"
    for resource, key in (
        ("customers", "customer_id"),
        ("orders", "order_id"),
        ("checkouts", "checkout_id"),
        ("products", "product_id"),
    )
}
OPEN_ORDERS_SQL = (
    "SELECT order_id AS id FROM '{store}/shopify_orders.parquet' WHERE created_at <= $clock"
    " AND NOT (updated_at > created_at AND updated_at <= $clock)"
)


class Client:
    """A thin Shopify REST client for one sandbox: base URL, token, Link-header paging."""

    def __init__(self, sandbox: Any, token: str) -> None:
        self.base = f"{sandbox.vendor_url('shopify')}/admin/api/{VERSION}"
        self.token = token

    def get(self, path: str, token: str | None = "default", **params: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base}/{path}"
        headers = {TOKEN_HEADER: self.token if token == "default" else token} if token else {}
        return requests.get(url, params=params, headers=headers, timeout=30)

    def walk(self, resource: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
        """Every record of a listing, following rel="next" links; (records, pages)."""
        response = self.get(f"{resource}.json", **params)
        records: list[dict[str, Any]] = []
        pages = 0
        while True:
            assert response.status_code == 200, response.text
            records += response.json()[resource]
            pages += 1
            found = NEXT.search(response.headers.get("Link", ""))
            if not found:
                return records, pages
            response = self.get(found.group(1))


def world_clock(sandbox: Any) -> datetime:
    return datetime.fromisoformat(sandbox.control("GET", "clock").json()["clock"].replace("Z", "+00:00"))


def store_ids(sandbox: Any, sql: str, clock: datetime) -> list[int]:
    with duckdb.connect() as con:
        rows = con.execute(sql.format(store=sandbox.world / "store"), {"clock": clock}).fetchall()
    return sorted(r[0] for r in rows)


@pytest.fixture
def shop(sandbox: Any) -> Iterator[Client]:
    """A client with a bucket large enough that the tests' bursts are never throttled (the
    rate-limit test lowers it instead); the previous overrides are restored afterwards."""
    before = sandbox.control("GET", "limits").json()["overrides"]
    sandbox.control("PUT", "limits", json={**before, "shopify": {"rest": {"capacity": 100_000}}})
    token = json.loads((sandbox.world / "world.json").read_text())["credentials"]["shopify"]["access_token"]
    yield Client(sandbox, token)
    sandbox.control("PUT", "limits", json=before)


# --------------------------------------------------------------------------------------------
# paging
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "params"),
    [("customers", {}), ("orders", {"status": "any"}), ("checkouts", {}), ("products", {})],
)
def test_paging_walks_every_visible_record_once(sandbox, shop, resource, params):
    records, pages = shop.walk(resource, limit=25, **params)
    ids = [r["id"] for r in records]
    expected = store_ids(sandbox, VISIBLE_SQL[resource], world_clock(sandbox))
    assert pages > 1
    assert ids == expected  # every visible row once, ordered by id
    assert shop.get(f"{resource}/count.json", **params).json() == {"count": len(expected)}


def test_orders_default_to_open_status(sandbox, shop):
    clock = world_clock(sandbox)
    open_ids = store_ids(sandbox, OPEN_ORDERS_SQL, clock)
    default, _ = shop.walk("orders", limit=250)
    closed, _ = shop.walk("orders", limit=250, status="closed")
    assert [o["id"] for o in default] == open_ids
    assert closed and all(o["closed_at"] and o["fulfillment_status"] == "fulfilled" for o in closed)
    assert len(default) + len(closed) == len(store_ids(sandbox, VISIBLE_SQL["orders"], clock))
    assert shop.get("orders/count.json").json() == {"count": len(open_ids)}


def test_links_are_absolute_and_previous_goes_back(sandbox, shop):
    first = shop.get("products.json", limit=50, fields="id,title")
    assert "previous" not in first.headers["Link"]
    next_url = NEXT.search(first.headers["Link"]).group(1)
    assert next_url.startswith(f"{sandbox.url}/shopify/admin/api/{VERSION}/products.json?")
    assert "fields=id%2Ctitle" in next_url and "page_info=" in next_url

    second = shop.get(next_url)
    assert set(second.json()["products"][0]) == {"id", "title"}
    back = shop.get(PREVIOUS.search(second.headers["Link"]).group(1))
    assert back.json() == first.json()
    assert NEXT.search(back.headers["Link"]).group(1) == next_url


def test_page_info_allows_only_limit_and_fields(shop):
    first = shop.get("orders.json", limit=5, status="any")
    next_url = NEXT.search(first.headers["Link"]).group(1)
    assert shop.get(next_url, limit=7).status_code == 200

    rejected = shop.get(next_url, status="any")
    assert rejected.status_code == 400
    assert rejected.json() == {
        "errors": {
            "status": "status cannot be passed when page_info is present. "
            "See https://shopify.dev/api/usage/pagination-rest for more information."
        }
    }
    garbled = shop.get("orders.json", page_info="not-a-cursor")
    assert garbled.status_code == 400 and garbled.json() == {"errors": {"page_info": "Invalid value."}}


def test_limit_defaults_to_50_and_caps_at_250(shop):
    total = shop.get("products/count.json").json()["count"]
    assert len(shop.get("products.json").json()["products"]) == 50
    assert len(shop.get("products.json", limit=250).json()["products"]) == min(total, 250)
    too_many = shop.get("products.json", limit=251)
    assert too_many.status_code == 400 and "limit" in too_many.json()["errors"]


# --------------------------------------------------------------------------------------------
# filters and shapes
# --------------------------------------------------------------------------------------------


def test_updated_and_created_filters_are_inclusive_bounds(shop):
    everything, _ = shop.walk("orders", limit=250, status="any")
    stamps = sorted({o["updated_at"] for o in everything})
    low, high = stamps[len(stamps) // 4], stamps[3 * len(stamps) // 4]
    expected = [o["id"] for o in everything if low <= o["updated_at"] <= high]

    window, _ = shop.walk("orders", limit=40, status="any", updated_at_min=low, updated_at_max=high)
    assert [o["id"] for o in window] == expected
    counted = shop.get("orders/count.json", status="any", updated_at_min=low, updated_at_max=high)
    assert counted.json() == {"count": len(expected)}

    created = sorted(o["created_at"] for o in everything)[len(everything) // 2]
    later, _ = shop.walk("orders", limit=250, status="any", created_at_min=created)
    assert [o["id"] for o in later] == [o["id"] for o in everything if o["created_at"] >= created]

    bad = shop.get("orders.json", updated_at_min="yesterday")
    assert bad.status_code == 400 and "updated_at_min" in bad.json()["errors"]


def test_since_id_ids_and_fields(shop):
    customers, _ = shop.walk("customers", limit=250)
    ids = [c["id"] for c in customers]
    after = shop.get("customers.json", since_id=ids[9], limit=5, fields="id,email").json()["customers"]
    assert [c["id"] for c in after] == ids[10:15]
    assert all(set(c) == {"id", "email"} for c in after)
    picked = shop.get("customers.json", ids=f"{ids[3]},{ids[1]}").json()["customers"]
    assert [c["id"] for c in picked] == [ids[1], ids[3]]


def test_customer_objects_carry_consent_and_addresses(sandbox, shop):
    customers, _ = shop.walk("customers", limit=250)
    clock = world_clock(sandbox)
    with duckdb.connect() as con:
        stored = {
            r[0]: r[1:]
            for r in con.execute(
                f"SELECT customer_id, marketing_opt_in_at, marketing_opt_out_at, address "
                f"FROM '{sandbox.world}/store/shopify_customers.parquet'"
            ).fetchall()
        }
    states = set()
    for customer in customers:
        assert not any(k.startswith("_") for k in customer)
        opt_in, opt_out, address = stored[customer["id"]]
        consent = customer["email_marketing_consent"]
        if opt_out and opt_out <= clock:
            expected = "unsubscribed"
        elif opt_in and opt_in <= clock:
            expected = "subscribed"
        else:
            expected = "not_subscribed"
        assert consent["state"] == expected
        states.add(expected)
        if json.loads(address).get("address1"):
            assert customer["default_address"]["customer_id"] == customer["id"]
            assert customer["addresses"] == [customer["default_address"]]
        else:
            assert customer["addresses"] == [] and "default_address" not in customer
        assert customer["created_at"] <= customer["updated_at"] <= clock.isoformat()
    assert {"subscribed", "not_subscribed"} <= states


def test_orders_checkouts_and_products_shapes(shop):
    order = shop.get("orders.json", status="any", limit=1).json()["orders"][0]
    assert re.fullmatch(r"\d+\.\d\d", order["total_price"])
    assert order["line_items"] and order["line_items"][0]["price"]
    assert order["customer"]["id"] and order["customer"]["email"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", order["created_at"])

    checkout = shop.get("checkouts.json", limit=1).json()["checkouts"][0]
    assert checkout["completed_at"] is None and checkout["token"] and checkout["cart_token"]
    assert re.fullmatch(r"https://.+/checkouts/[0-9a-f]{32}/recover\?key=\w+", checkout["abandoned_checkout_url"])
    assert checkout["line_items"] and "total_price" in checkout

    product = shop.get("products.json", limit=1).json()["products"][0]
    assert len(product["variants"]) == 1 and isinstance(product["variants"][0]["inventory_quantity"], int)
    assert product["product_type"]


def test_single_object_gets(shop):
    order = shop.get("orders.json", status="closed", limit=1).json()["orders"][0]
    single = shop.get(f"orders/{order['id']}.json")  # any status, as on Shopify
    assert single.status_code == 200 and single.json() == {"order": order}
    product = shop.get("products.json", limit=1).json()["products"][0]
    assert shop.get(f"products/{product['id']}.json", fields="id,handle").json() == {
        "product": {"id": product["id"], "handle": product["handle"]}
    }
    customer = shop.get("customers.json", limit=1).json()["customers"][0]
    assert shop.get(f"customers/{customer['id']}.json").json() == {"customer": customer}
    missing = shop.get("customers/1.json")
    assert missing.status_code == 404 and missing.json() == {"errors": "Not Found"}


# --------------------------------------------------------------------------------------------
# auth and rate limits
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "shpat_wrong"])
def test_auth_rejection(shop, token):
    response = shop.get("customers.json", token=token)
    assert response.status_code == 401
    assert response.json() == AUTH_ERROR


def test_every_answer_carries_the_call_limit_header(shop):
    response = shop.get("customers/count.json")
    assert response.status_code == 200
    assert re.fullmatch(r"\d+/100000", response.headers[CALL_LIMIT])
    assert response.headers["X-Shopify-API-Version"] == VERSION


def test_leaky_bucket_throttles_with_shopify_429(sandbox, shop):
    sandbox.control("PUT", "limits", json={"shopify": {"rest": {"capacity": 3, "leak_per_second": 0.5}}})
    answers = [shop.get("products/count.json") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers[CALL_LIMIT] for a in answers[:3]] == ["1/3", "2/3", "3/3"]
    throttled = answers[3]
    assert throttled.json() == THROTTLED
    assert throttled.headers[CALL_LIMIT] == "3/3"
    assert float(throttled.headers["Retry-After"]) >= 2.0
    assert sandbox.control("GET", "counters").json()["rate_limited"]["shopify"] >= 1


def test_a_switched_off_limit_reports_no_bucket(sandbox, shop):
    # Sent as "0/0", a rule switched off read as a full bucket: the loader's pacer then waited
    # two seconds before every request of a history load meant to run unthrottled.
    sandbox.control("PUT", "limits", json={"shopify": {"rest": {"enabled": False}}})
    answers = [shop.get("products/count.json") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(CALL_LIMIT not in a.headers for a in answers)


# --------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------


def test_injected_429_and_500_have_shopify_shape(sandbox, shop):
    sandbox.set_faults(rate_429=1.0, retry_after_seconds=2.0, vendors=["shopify"])
    throttled = shop.get("customers.json")
    assert throttled.status_code == 429 and throttled.json() == THROTTLED
    assert throttled.headers["Retry-After"] == "2.0"
    sandbox.set_faults(rate_500=1.0, vendors=["shopify"])
    failed = shop.get("customers.json")
    assert failed.status_code == 500 and failed.json() == {"errors": "Internal Server Error"}


def test_injected_slow_response(sandbox, shop):
    sandbox.set_faults(rate_slow=1.0, slow_seconds=0.4, vendors=["shopify"])
    started = time.monotonic()
    assert shop.get("products/count.json").status_code == 200
    assert time.monotonic() - started >= 0.4


def test_injected_malformed_records(sandbox, shop):
    sandbox.set_faults(rate_malformed=1.0, vendors=["shopify"])
    customers = shop.get("customers.json", limit=20).json()["customers"]
    broken_ids = [c for c in customers if c["id"] is None]
    broken_stamps = [c for c in customers if c["updated_at"] == "not-a-timestamp"]
    assert broken_ids and broken_stamps and len(broken_ids) + len(broken_stamps) == len(customers)


def test_injected_duplicates_repeat_the_previous_page(sandbox, shop):
    sandbox.set_faults(rate_duplicate=1.0, vendors=["shopify"])
    first = shop.get("checkouts.json", limit=10)
    second = shop.get(NEXT.search(first.headers["Link"]).group(1)).json()["checkouts"]
    assert second[:10] == first.json()["checkouts"]
    assert len(second) == 20


def test_injected_schema_drift(sandbox, shop):
    sandbox.set_faults(drift="added_field", vendors=["shopify"])
    orders = shop.get("orders.json", status="any", limit=5).json()["orders"]
    assert all(o["sandbox_added_field"] == "sandbox drift" for o in orders)
    sandbox.set_faults(drift="retyped_field", vendors=["shopify"])
    customers = shop.get("customers.json", limit=5).json()["customers"]
    assert all(isinstance(c["orders_count"], str) for c in customers)


# --------------------------------------------------------------------------------------------
# the world clock
# --------------------------------------------------------------------------------------------


def test_clock_advance_reveals_new_rows(private_sandbox):
    sandbox = private_sandbox
    token = json.loads((sandbox.world / "world.json").read_text())["credentials"]["shopify"]["access_token"]
    client = Client(sandbox, token)
    listings = {"orders": {"status": "any"}, "checkouts": {}}
    before = {r: client.get(f"{r}/count.json", **p).json()["count"] for r, p in listings.items()}
    newest = max(o["updated_at"] for o in client.walk("orders", limit=250, status="any")[0])

    sandbox.control("POST", "clock/advance", json={"days": 2})
    clock = world_clock(sandbox)
    for resource, count in before.items():
        after = client.get(f"{resource}/count.json", **listings[resource]).json()["count"]
        assert after > count
        assert after == len(store_ids(sandbox, VISIBLE_SQL[resource], clock))
    fresh, _ = client.walk("orders", limit=250, status="any", updated_at_min=newest)
    assert fresh and all(o["updated_at"] >= newest for o in fresh)
    assert max(o["updated_at"] for o in fresh) <= clock.astimezone(UTC).isoformat()
