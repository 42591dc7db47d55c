"""The Shopify dlt source against the sandbox: complete, incremental, robust to faults, clear failures."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta
from pathlib import Path

import dlt
import duckdb
import pytest
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.pipeline.exceptions import PipelineStepFailed

from ingestion.common.http import RetryPolicy
from ingestion.common.pacing import ShopifyBucketPacer
from ingestion.pipelines import load, make_pipeline
from ingestion.shopify import shopify_source
from ingestion.shopify.settings import LOOKBACK_SECONDS

# table -> (store table, its id column)
ENTITIES = {
    "customers": ("shopify_customers", "customer_id"),
    "orders": ("shopify_orders", "order_id"),
    "products": ("shopify_products", "product_id"),
    "abandoned_checkouts": ("shopify_checkouts", "checkout_id"),
}
CURSOR_RESOURCES = tuple(ENTITIES)
# One page per listing when nothing much changed: customers, orders (status=any), products,
# and abandoned checkouts (status=open and status=closed).
LISTINGS = 5
FAST = RetryPolicy(max_attempts=8, backoff_base=0.01, backoff_max=0.1, timeout=30)


def _token(world: Path) -> str:
    return json.loads((world / "world.json").read_text())["credentials"]["shopify"]["access_token"]


def _source(sandbox, **kwargs):
    kwargs.setdefault("retry_policy", FAST)
    # An injected 429 reports a full bucket (40/40); drain it fast so tests do not wait seconds.
    kwargs.setdefault("pacer", ShopifyBucketPacer(leak_per_second=100))
    return shopify_source(base_url=sandbox.vendor_url("shopify"), access_token=_token(sandbox.world), **kwargs)


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return make_pipeline("shopify", tmp_path / "warehouse.duckdb", tmp_path / "dlt")


def _query(tmp_path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _world(world: Path, sql: str) -> list[tuple]:
    """`sql` over the store: `{store}` stands for its directory, `$clock` for the world clock."""
    clock = json.loads((world / "world.json").read_text())["clock"]
    con = duckdb.connect()
    return con.execute(sql.replace("{store}", str(world / "store")), {"clock": clock}).fetchall()


def _visible_ids(world: Path) -> dict[str, set[int]]:
    return {
        table: {
            r[0]
            for r in _world(
                world, f"SELECT {key} FROM '{{store}}/{store}.parquet' WHERE created_at <= $clock::TIMESTAMPTZ"
            )
        }
        for table, (store, key) in ENTITIES.items()
    }


def _loaded(tmp_path: Path) -> dict[str, tuple[int, set[int]]]:
    out = {}
    for table in ENTITIES:
        ids = [r[0] for r in _query(tmp_path, f"SELECT id FROM raw_shopify.{table}")]
        out[table] = (len(ids), set(ids))
    return out


def _assert_complete(tmp_path: Path, world: Path) -> None:
    expected = _visible_ids(world)
    for table, (rows, ids) in _loaded(tmp_path).items():
        assert rows == len(ids) == len(expected[table]), table
        assert ids == expected[table], table


def _cursors(pipeline: dlt.Pipeline) -> dict[str, object]:
    resources = pipeline.state["sources"]["shopify"]["resources"]
    return {r: resources[r]["incremental"]["updated_at"]["last_value"] for r in CURSOR_RESOURCES}


def _requests(sandbox) -> int:
    return sandbox.control("GET", "counters").json()["requests"].get("shopify", 0)


def test_loads_every_record_once_with_line_items_and_stock(sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox, page_size=100), pipeline)  # several pages per listing
    _assert_complete(tmp_path, sandbox.world)

    # Line items are a child table that joins on Shopify's order id, one row per item.
    [(items,)] = _world(
        sandbox.world,
        "SELECT sum(json_array_length(line_items)) FROM '{store}/shopify_orders.parquet'"
        " WHERE created_at <= $clock::TIMESTAMPTZ",
    )
    [(loaded_items, orphans)] = _query(
        tmp_path,
        "SELECT count(*), count(*) FILTER (WHERE o.id IS DISTINCT FROM li.order_id)"
        " FROM raw_shopify.orders__line_items li LEFT JOIN raw_shopify.orders o ON li._dlt_parent_id = o._dlt_id",
    )
    assert (loaded_items, orphans) == (items, 0)
    [(with_customer,)] = _world(
        sandbox.world,
        "SELECT count(customer_id) FROM '{store}/shopify_orders.parquet' WHERE created_at <= $clock::TIMESTAMPTZ",
    )
    assert _query(tmp_path, "SELECT count(customer__id) FROM raw_shopify.orders") == [(with_customer,)]

    # Stock: one variant per product, with the store's inventory.
    stock = dict(
        _world(
            sandbox.world,
            "SELECT product_id, inventory_quantity FROM '{store}/shopify_products.parquet'"
            " WHERE created_at <= $clock::TIMESTAMPTZ",
        )
    )
    assert dict(_query(tmp_path, "SELECT product_id, inventory_quantity FROM raw_shopify.products__variants")) == stock

    # Abandoned checkouts keep what the abandonment audience needs, typed.
    columns = dict(
        _query(
            tmp_path,
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'raw_shopify' AND table_name = 'abandoned_checkouts'",
        )
    )
    for name in ("token", "cart_token", "email", "phone", "customer__id", "total_price", "subtotal_price"):
        assert name in columns, name
    for name in ("created_at", "updated_at", "completed_at"):
        assert columns[name].startswith("TIMESTAMP"), name
    [(checkout_items,)] = _world(
        sandbox.world,
        "SELECT sum(json_array_length(line_items)) FROM '{store}/shopify_checkouts.parquet'"
        " WHERE created_at <= $clock::TIMESTAMPTZ",
    )
    assert _query(
        tmp_path, "SELECT count(*), count(DISTINCT checkout_id) > 0 FROM raw_shopify.abandoned_checkouts__line_items"
    ) == [(checkout_items, True)]


def test_a_second_run_reads_only_the_lookback_window(sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox), pipeline)
    before = _loaded(tmp_path)
    sandbox.control("POST", "counters/reset")

    load(_source(sandbox), pipeline)
    assert _loaded(tmp_path) == before
    assert _requests(sandbox) == LISTINGS
    # What was read again is the records changed within the lookback before each cursor.
    extracted = pipeline.last_trace.last_normalize_info.row_counts
    for table, (rows, _) in before.items():
        assert extracted.get(table, 0) < rows, table


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
    [(changed,)] = _world(
        private_sandbox.world,
        "SELECT count(*) FROM '{store}/shopify_orders.parquet' WHERE created_at <= $clock::TIMESTAMPTZ"
        " AND date_trunc('second', CASE WHEN updated_at <= $clock::TIMESTAMPTZ THEN updated_at ELSE created_at END)"
        f" >= '{since.isoformat()}'::TIMESTAMPTZ",
    )
    assert changed > 0
    assert pipeline.last_trace.last_normalize_info.row_counts["orders"] == changed
    assert _requests(private_sandbox) < 2 * LISTINGS


def test_faults_quarantine_bad_records_and_the_next_run_repairs_them(sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    sandbox.set_faults(
        rate_429=0.2,
        rate_500=0.1,
        rate_duplicate=0.2,
        rate_malformed=0.02,
        drift="retyped_field",
        retry_after_seconds=0.2,
        seed=11,
    )
    load(_source(sandbox, page_size=100), pipeline)
    faults = sandbox.control("GET", "counters").json()["faults"]["shopify"]
    assert faults.get("malformed", 0) > 0 and faults.get("duplicate", 0) > 0

    expected = _visible_ids(sandbox.world)
    quarantined = dict(_query(tmp_path, "SELECT resource, count(*) FROM raw_shopify.quarantine GROUP BY 1"))
    assert sum(quarantined.values()) > 0
    for table, (rows, ids) in _loaded(tmp_path).items():
        assert rows == len(ids), f"{table}: duplicates"
        assert ids <= expected[table], table
        assert len(expected[table] - ids) <= quarantined.get(table, 0), f"{table}: records missing, not quarantined"
    # Each quarantined record is kept whole, with the reason the sandbox's corruption gives.
    for reason, record in _query(tmp_path, "SELECT reason, record FROM raw_shopify.quarantine"):
        assert reason == "missing primary key id" or reason.startswith("unparseable timestamp in updated_at")
        assert json.loads(record)["created_at"]
    # The retyped numbers were coerced back: no variant column appeared.
    variants = _query(
        tmp_path,
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'raw_shopify' AND contains(column_name, '__v_')",
    )
    assert variants == []
    assert _query(tmp_path, "SELECT typeof(orders_count) FROM raw_shopify.customers LIMIT 1") == [("BIGINT",)]

    sandbox.reset()  # faults off: the API serves every record clean again
    load(_source(sandbox), pipeline)
    _assert_complete(tmp_path, sandbox.world)
    assert not any(pipeline.state["sources"]["shopify"].get("quarantined", {}).values())


def test_a_failing_run_keeps_the_cursor_and_the_next_run_resumes(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(private_sandbox), pipeline)
    before = _cursors(pipeline)
    private_sandbox.control("POST", "clock/advance", json={"days": 1})

    private_sandbox.set_faults(rate_500=1.0)
    with pytest.raises(PipelineStepFailed, match="HTTP 500 after 2 attempt"):
        load(_source(private_sandbox, retry_policy=RetryPolicy(max_attempts=2, backoff_base=0.01)), pipeline)
    assert _cursors(pipeline) == before

    private_sandbox.reset()
    load(_source(private_sandbox), pipeline)
    _assert_complete(tmp_path, private_sandbox.world)
    after = _cursors(pipeline)
    assert all(after[r] > before[r] for r in ("orders", "abandoned_checkouts"))  # the new day was read


def test_a_wrong_token_fails_at_once_naming_the_setting(sandbox, tmp_path):
    source = shopify_source(base_url=sandbox.vendor_url("shopify"), access_token="shpat_wrong", retry_policy=FAST)
    with pytest.raises(PipelineStepFailed, match="SOURCES__SHOPIFY__ACCESS_TOKEN") as failed:
        load(source, _pipeline(tmp_path))
    assert "shpat_wrong" not in str(failed.value)
    counters = sandbox.control("GET", "counters").json()
    assert counters["responses"]["shopify"] == {"401": _requests(sandbox)}  # no retries


def test_a_missing_token_names_the_setting(monkeypatch):
    monkeypatch.delenv("SOURCES__SHOPIFY__ACCESS_TOKEN", raising=False)
    with pytest.raises(ConfigFieldMissingException, match="SOURCES__SHOPIFY__ACCESS_TOKEN"):
        shopify_source(base_url="http://127.0.0.1:8700/shopify")


def test_a_wrong_base_url_fails_at_once_naming_the_setting(sandbox, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    source = shopify_source(base_url=f"http://127.0.0.1:{port}/shopify", access_token="x", retry_policy=FAST)
    with pytest.raises(PipelineStepFailed, match="SOURCES__SHOPIFY__BASE_URL"):
        load(source, _pipeline(tmp_path))
    # A server that is not a Shopify shop (here: the sandbox without the vendor prefix).
    source = shopify_source(base_url=sandbox.url, access_token=_token(sandbox.world), retry_policy=FAST)
    with pytest.raises(PipelineStepFailed, match="SOURCES__SHOPIFY__BASE_URL"):
        load(source, _pipeline(tmp_path / "other"))
