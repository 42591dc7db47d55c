"""The Shopify dlt source against the sandbox: complete, incremental, robust to faults, clear failures."""

from __future__ import annotations

import json
import socket
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import dlt
import pytest
from dlt.common.configuration.exceptions import ConfigFieldMissingException

from ingestion.common.http import RetryPolicy
from ingestion.common.pacing import ShopifyBucketPacer
from ingestion.pipelines import load
from ingestion.shopify import shopify_source
from ingestion.shopify.settings import LOOKBACK_SECONDS
from tests.conftest import running_sandbox
from tests.ingestion.support import (
    FAULTS,
    assert_failing_run_keeps_cursors,
    assert_load_fails_naming,
    assert_quarantined,
    counters,
    credentials,
    cursor_values,
    extracted,
    local_pipeline,
    requests_made,
    store_rows,
    variant_columns,
    warehouse_rows,
)

# table -> (store table, its id column)
ENTITIES = {
    "customers": ("shopify_customers", "customer_id"),
    "orders": ("shopify_orders", "order_id"),
    "products": ("shopify_products", "product_id"),
    "abandoned_checkouts": ("shopify_checkouts", "checkout_id"),
}
CURSOR_RESOURCES = tuple(ENTITIES)
# Requests of a run when nothing much changed: one page per listing (customers, orders (status=any), products,
# and abandoned checkouts (status=open and status=closed)), and the token's scopes, read once.
QUIET_RUN_REQUESTS = 5 + 1
FAST = RetryPolicy(max_attempts=8, backoff_base=0.01, backoff_max=0.1, timeout=30)


def _token(world: Path) -> str:
    return credentials(world, "shopify")["access_token"]


def _source(sandbox, **kwargs):
    kwargs.setdefault("retry_policy", FAST)
    # An injected 429 reports a full bucket (40/40); drain it fast so tests do not wait seconds.
    kwargs.setdefault("pacer", ShopifyBucketPacer(leak_per_second=100))
    return shopify_source(base_url=sandbox.vendor_url("shopify"), access_token=_token(sandbox.world), **kwargs)


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return local_pipeline("shopify", tmp_path)


def _visible_ids(world: Path) -> dict[str, set[int]]:
    return {
        table: {
            r[0]
            for r in store_rows(
                world, f"SELECT {key} FROM '{{store}}/{store}.parquet' WHERE created_at <= $clock::TIMESTAMPTZ"
            )
        }
        for table, (store, key) in ENTITIES.items()
    }


def _loaded(tmp_path: Path) -> dict[str, tuple[int, set[int]]]:
    out = {}
    for table in ENTITIES:
        ids = [r[0] for r in warehouse_rows(tmp_path, f"SELECT id FROM raw_shopify.{table}")]
        out[table] = (len(ids), set(ids))
    return out


def _assert_complete(tmp_path: Path, world: Path) -> None:
    expected = _visible_ids(world)
    for table, (rows, ids) in _loaded(tmp_path).items():
        assert rows == len(ids) == len(expected[table]), table
        assert ids == expected[table], table


def _cursors(pipeline: dlt.Pipeline) -> dict[str, object]:
    return cursor_values(pipeline, "shopify", dict.fromkeys(CURSOR_RESOURCES, "updated_at"))


def _requests(sandbox) -> int:
    return requests_made(sandbox, "shopify")


def test_loads_every_record_once_with_line_items_and_stock(sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox, page_size=100), pipeline)  # several pages per listing
    _assert_complete(tmp_path, sandbox.world)

    # Line items are a child table that joins on Shopify's order id, one row per item.
    [(items,)] = store_rows(
        sandbox.world,
        "SELECT sum(json_array_length(line_items)) FROM '{store}/shopify_orders.parquet'"
        " WHERE created_at <= $clock::TIMESTAMPTZ",
    )
    [(loaded_items, orphans)] = warehouse_rows(
        tmp_path,
        "SELECT count(*), count(*) FILTER (WHERE o.id IS DISTINCT FROM li.order_id)"
        " FROM raw_shopify.orders__line_items li LEFT JOIN raw_shopify.orders o ON li._dlt_parent_id = o._dlt_id",
    )
    assert (loaded_items, orphans) == (items, 0)
    [(with_customer,)] = store_rows(
        sandbox.world,
        "SELECT count(customer_id) FROM '{store}/shopify_orders.parquet' WHERE created_at <= $clock::TIMESTAMPTZ",
    )
    assert warehouse_rows(tmp_path, "SELECT count(customer__id) FROM raw_shopify.orders") == [(with_customer,)]

    # Stock: one variant per product, with the store's inventory.
    stock = dict(
        store_rows(
            sandbox.world,
            "SELECT product_id, inventory_quantity FROM '{store}/shopify_products.parquet'"
            " WHERE created_at <= $clock::TIMESTAMPTZ",
        )
    )
    assert (
        dict(warehouse_rows(tmp_path, "SELECT product_id, inventory_quantity FROM raw_shopify.products__variants"))
        == stock
    )

    # Abandoned checkouts keep what the abandonment audience needs, typed.
    columns = dict(
        warehouse_rows(
            tmp_path,
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'raw_shopify' AND table_name = 'abandoned_checkouts'",
        )
    )
    for name in ("token", "cart_token", "email", "phone", "customer__id", "total_price", "subtotal_price"):
        assert name in columns, name
    for name in ("created_at", "updated_at", "completed_at"):
        assert columns[name].startswith("TIMESTAMP"), name
    [(checkout_items,)] = store_rows(
        sandbox.world,
        "SELECT sum(json_array_length(line_items)) FROM '{store}/shopify_checkouts.parquet'"
        " WHERE created_at <= $clock::TIMESTAMPTZ",
    )
    assert warehouse_rows(
        tmp_path, "SELECT count(*), count(DISTINCT checkout_id) > 0 FROM raw_shopify.abandoned_checkouts__line_items"
    ) == [(checkout_items, True)]


def test_fields_shopify_sends_null_raise_no_warning(sandbox, tmp_path):
    """Shopify sends every field, null or not (a guest's `customer`, an empty `company`): dlt
    warned about each column no record filled, on every first load of a shop."""
    import logging

    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    dlt_logger = logging.getLogger("dlt")
    handler = Collect()
    dlt_logger.addHandler(handler)
    try:
        load(_source(sandbox), _pipeline(tmp_path))
    finally:
        dlt_logger.removeHandler(handler)
    assert not [w for w in warnings if "could not have their types inferred" in w], warnings
    _assert_complete(tmp_path, sandbox.world)  # and every record is in, with its values


def test_a_second_run_reads_only_the_lookback_window(sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox), pipeline)
    before = _loaded(tmp_path)
    sandbox.control("POST", "counters/reset")

    load(_source(sandbox), pipeline)
    assert _loaded(tmp_path) == before
    assert _requests(sandbox) == QUIET_RUN_REQUESTS
    # What was read again is the records changed within the lookback before each cursor.
    rows_read = extracted(pipeline)
    for table, (rows, _) in before.items():
        assert rows_read.get(table, 0) < rows, table


def test_merges_leave_no_copy_of_the_records_in_the_staging_dataset(sandbox, tmp_path):
    # dlt merges through `raw_shopify_staging`; left filled, it keeps a second copy of the
    # last load's personal data, which every erasure would have to find as well.
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox), pipeline)
    load(_source(sandbox), pipeline)  # the second load merges into existing tables
    staged = warehouse_rows(
        tmp_path,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw_shopify_staging' "
        "AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\'",
    )
    assert staged, "the merge used no staging tables"
    for (table,) in staged:
        assert warehouse_rows(tmp_path, f'SELECT count(*) FROM raw_shopify_staging."{table}"') == [(0,)], table


def test_after_a_day_passes_only_the_new_day_is_read(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(private_sandbox), pipeline)
    cursor = _cursors(pipeline)["orders"]
    private_sandbox.control("POST", "clock/advance", json={"days": 1})
    private_sandbox.control("POST", "counters/reset")

    load(_source(private_sandbox), pipeline)
    _assert_complete(tmp_path, private_sandbox.world)
    # Orders read again: exactly those whose reported updated_at is within the day plus the lookback.
    since = datetime.fromisoformat(str(cursor)) - timedelta(seconds=LOOKBACK_SECONDS)
    [(changed,)] = store_rows(
        private_sandbox.world,
        "SELECT count(*) FROM '{store}/shopify_orders.parquet' WHERE created_at <= $clock::TIMESTAMPTZ"
        " AND date_trunc('second', CASE WHEN updated_at <= $clock::TIMESTAMPTZ THEN updated_at ELSE created_at END)"
        f" >= '{since.isoformat()}'::TIMESTAMPTZ",
    )
    assert changed > 0
    assert extracted(pipeline)["orders"] == changed
    assert _requests(private_sandbox) < 2 * QUIET_RUN_REQUESTS


def test_faults_quarantine_bad_records_and_the_next_run_repairs_them(sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    sandbox.set_faults(**FAULTS, rate_malformed=0.02, seed=11)
    load(_source(sandbox, page_size=100), pipeline)
    faults = counters(sandbox)["faults"]["shopify"]
    assert faults.get("malformed", 0) > 0 and faults.get("duplicate", 0) > 0

    expected = _visible_ids(sandbox.world)
    records = assert_quarantined(tmp_path, "raw_shopify")
    quarantined = Counter(resource for resource, _, _ in records)
    for table, (rows, ids) in _loaded(tmp_path).items():
        assert rows == len(ids), f"{table}: duplicates"
        assert ids <= expected[table], table
        assert len(expected[table] - ids) <= quarantined.get(table, 0), f"{table}: records missing, not quarantined"
    # Each quarantined record is kept whole, with the reason the sandbox's corruption gives.
    for _, reason, record in records:
        assert reason == "missing primary key id" or reason.startswith("unparseable timestamp in updated_at")
        assert json.loads(record)["created_at"]
    # The retyped numbers were coerced back: no variant column appeared.
    assert variant_columns(tmp_path, "raw_shopify") == []
    assert warehouse_rows(tmp_path, "SELECT typeof(orders_count) FROM raw_shopify.customers LIMIT 1") == [("BIGINT",)]

    sandbox.reset()  # faults off: the API serves every record clean again
    load(_source(sandbox), pipeline)
    _assert_complete(tmp_path, sandbox.world)
    assert not any(pipeline.state["sources"]["shopify"].get("quarantined", {}).values())


def test_a_failing_run_keeps_the_cursor_and_the_next_run_resumes(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    before = assert_failing_run_keeps_cursors(private_sandbox, pipeline, partial(_source, private_sandbox), _cursors)

    private_sandbox.reset()
    load(_source(private_sandbox), pipeline)
    _assert_complete(tmp_path, private_sandbox.world)
    after = _cursors(pipeline)
    assert all(after[r] > before[r] for r in ("orders", "abandoned_checkouts"))  # the new day was read


def test_a_wrong_token_fails_at_once_naming_the_setting(sandbox, tmp_path):
    source = shopify_source(base_url=sandbox.vendor_url("shopify"), access_token="shpat_wrong", retry_policy=FAST)
    assert_load_fails_naming(source, _pipeline(tmp_path), "SOURCES__SHOPIFY__ACCESS_TOKEN", secret="shpat_wrong")
    assert counters(sandbox)["responses"]["shopify"] == {"401": _requests(sandbox)}  # no retries


def test_a_missing_token_names_the_setting(monkeypatch):
    monkeypatch.delenv("SOURCES__SHOPIFY__ACCESS_TOKEN", raising=False)
    with pytest.raises(ConfigFieldMissingException, match="SOURCES__SHOPIFY__ACCESS_TOKEN"):
        shopify_source(base_url="http://127.0.0.1:8700/shopify")


def test_a_wrong_base_url_fails_at_once_naming_the_setting(sandbox, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    source = shopify_source(base_url=f"http://127.0.0.1:{port}/shopify", access_token="x", retry_policy=FAST)
    assert_load_fails_naming(source, _pipeline(tmp_path), "SOURCES__SHOPIFY__BASE_URL")
    # A server that is not a Shopify shop (here: the sandbox without the vendor prefix).
    source = shopify_source(base_url=sandbox.url, access_token=_token(sandbox.world), retry_policy=FAST)
    assert_load_fails_naming(source, _pipeline(tmp_path / "other"), "SOURCES__SHOPIFY__BASE_URL")


def test_a_token_without_read_all_orders_loads_60_days_and_says_so(fresh_world, tmp_path, caplog, monkeypatch):
    """Shopify serves only the last 60 days of orders to an app without `read_all_orders`, and
    no error says so: the load does. (The test world spans 30 days: its window is made 10.)"""
    import logging

    from sandbox.server.vendors.shopify import api as shopify_api

    monkeypatch.setattr(shopify_api, "RECENT_ORDERS_DAYS", 10)
    meta = json.loads((fresh_world / "world.json").read_text())
    meta["credentials"]["shopify"]["scopes"] = ["read_customers", "read_orders", "read_products"]
    (fresh_world / "world.json").write_text(json.dumps(meta))
    with running_sandbox(fresh_world) as sandbox, caplog.at_level(logging.WARNING, logger="tessera.ingestion"):
        load(_source(sandbox).with_resources("orders"), _pipeline(tmp_path))
        clock = datetime.fromisoformat(sandbox.control("GET", "clock").json()["clock"])
    assert "lacks the read_all_orders scope" in caplog.text
    [(loaded, oldest)] = warehouse_rows(tmp_path, "SELECT count(*), min(created_at) FROM raw_shopify.orders")
    assert loaded > 0 and clock - oldest <= timedelta(days=10)
    [(older,)] = store_rows(
        fresh_world,
        "SELECT count(*) FROM '{store}/shopify_orders.parquet'"
        " WHERE created_at < $clock::TIMESTAMPTZ - INTERVAL 10 DAY",
    )
    assert older > 0  # the world has older orders, which this token cannot see


def test_a_token_with_every_scope_raises_no_warning(sandbox, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="tessera.ingestion"):
        load(_source(sandbox).with_resources("orders"), _pipeline(tmp_path))
    assert "read_all_orders" not in caplog.text


def test_each_read_ends_where_it_began_so_a_long_read_misses_no_update(sandbox, tmp_path, monkeypatch):
    """A first load of a big shop takes longer than the lookback: a record updated during the
    read, after its page went by, must not fall behind a cursor that later pages pushed past
    it. Each listing is bounded by `updated_at_max` = when the read began, so the cursor stays
    before it and the next run reads what changed during the read."""
    from ingestion.shopify import helpers

    asked: list[dict] = []
    pages = helpers.ShopifyApi.pages

    def recording(self, endpoint, params):
        asked.append(dict(params))
        return pages(self, endpoint, params)

    monkeypatch.setattr(helpers.ShopifyApi, "pages", recording)
    before = datetime.now(UTC)
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox), pipeline)
    after = datetime.now(UTC)
    listings = [p for p in asked if "updated_at_min" in p]
    assert len(listings) == 5  # customers, orders, products, open and closed checkouts
    for params in listings:
        assert before <= datetime.fromisoformat(params["updated_at_max"]) <= after, params
