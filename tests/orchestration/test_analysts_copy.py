"""The analysts' copy: the marts published whole, with their descriptions, replaced atomically."""

from __future__ import annotations

import duckdb
import pytest

from orchestration.defs.serving.analysts_copy import publish


def _warehouse(path, customers: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute("CREATE SCHEMA IF NOT EXISTS raw_shopify")
        con.execute(
            "CREATE OR REPLACE TABLE marts.dim_customers AS SELECT range AS customer_id FROM range(?)", [customers]
        )
        con.execute("CREATE OR REPLACE TABLE raw_shopify.orders AS SELECT 1 AS secret_raw_column")


DOCS = {
    ("marts", "dim_customers"): {"description": "One row per customer.", "columns": {"customer_id": "The customer."}}
}


def test_publishes_the_marts_only_with_their_descriptions(tmp_path):
    warehouse, copy = tmp_path / "warehouse.duckdb", tmp_path / "analysts.duckdb"
    _warehouse(warehouse, 3)
    published = publish(warehouse, copy, DOCS)
    assert published["tables"] == {"marts.dim_customers": 3}
    with duckdb.connect(str(copy), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.dim_customers").fetchall() == [(3,)]
        assert con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'dim_customers'").fetchall() == [
            ("One row per customer.",)
        ]
        assert con.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'dim_customers' AND column_name = 'customer_id'"
        ).fetchall() == [("The customer.",)]
        schemas = {s for (s,) in con.execute("SELECT DISTINCT table_schema FROM information_schema.tables").fetchall()}
        assert schemas == {"marts"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysts.duckdb", "warehouse.duckdb"], "no leftovers"


def test_a_reader_of_the_old_copy_is_undisturbed_and_the_next_reader_sees_the_new(tmp_path):
    warehouse, copy = tmp_path / "warehouse.duckdb", tmp_path / "analysts.duckdb"
    _warehouse(warehouse, 3)
    publish(warehouse, copy)
    with duckdb.connect(str(copy), read_only=True) as analyst:
        _warehouse(warehouse, 5)
        publish(warehouse, copy)  # while the analyst's connection is open
        assert analyst.execute("SELECT count(*) FROM marts.dim_customers").fetchall() == [(3,)]
    with duckdb.connect(str(copy), read_only=True) as later:
        assert later.execute("SELECT count(*) FROM marts.dim_customers").fetchall() == [(5,)]


def test_a_failed_publish_leaves_the_previous_copy_whole(tmp_path):
    warehouse, copy = tmp_path / "warehouse.duckdb", tmp_path / "analysts.duckdb"
    _warehouse(warehouse, 3)
    publish(warehouse, copy)
    with pytest.raises(duckdb.Error):
        publish(tmp_path / "missing" / "warehouse.duckdb", copy)
    with duckdb.connect(str(copy), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.dim_customers").fetchall() == [(3,)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysts.duckdb", "warehouse.duckdb"]


# --------------------------------------------------------------------------------------------
# Reading the copy while a run writes the warehouse (separate processes, as in production)
# --------------------------------------------------------------------------------------------

# Rows per published table for each version of the marts: a reader that counts the wrong number
# of rows for the version it sees has read a half-written copy.
MART_TABLES = ("dim_customers", "fct_orders")


def _rows(version: int) -> int:
    return 100_000 * version


def _marts(path, version: int) -> None:
    """Marts of one run: every row carries the run's version, and the row count follows it."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        for table in MART_TABLES:
            con.execute(
                f"CREATE OR REPLACE TABLE marts.{table} AS "
                f"SELECT {version} AS version, range AS id, md5(range::varchar) AS payload FROM range({_rows(version)})"
            )


# A run: holds the warehouse's write lock for its whole life, appends raw rows for a few seconds
# (committing as dlt and dbt do), then rebuilds the marts at the next version, one table at a time.
WRITER = """
import sys, time, duckdb
path, version, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
con = duckdb.connect(path)
con.execute("CREATE SCHEMA IF NOT EXISTS raw_events")
con.execute("CREATE TABLE IF NOT EXISTS raw_events.events (id BIGINT, payload VARCHAR)")
print("writing", flush=True)
deadline = time.monotonic() + seconds
batches = 0
while time.monotonic() < deadline:
    con.execute("INSERT INTO raw_events.events SELECT range, md5(range::varchar) FROM range(50000)")
    con.execute("CHECKPOINT")
    batches += 1
for table in ("dim_customers", "fct_orders"):
    con.execute(
        f"CREATE OR REPLACE TABLE marts.{table} AS "
        f"SELECT {version} AS version, range AS id, md5(range::varchar) AS payload FROM range({100_000 * version})"
    )
con.close()
print(f"done {batches}", flush=True)
"""

# An analyst: a new read-only connection per query (as a notebook or BI tool opens them), until
# the stop file appears; one JSON line per query: when it ran, and what it saw or what failed.
ANALYST = """
import json, os, sys, time, duckdb
copy, stop = sys.argv[1], sys.argv[2]
while not os.path.exists(stop):
    started = time.time()
    try:
        with duckdb.connect(copy, read_only=True) as con:
            seen = {
                table: con.execute(f"SELECT min(version), max(version), count(*) FROM marts.{table}").fetchall()[0]
                for table in ("dim_customers", "fct_orders")
            }
        print(json.dumps({"started": started, "ended": time.time(), "seen": seen}), flush=True)
    except Exception as exc:
        print(json.dumps({"started": started, "ended": time.time(), "error": repr(exc)}), flush=True)
    time.sleep(0.005)
"""


def test_analysts_query_the_copy_while_a_run_writes_the_warehouse_and_publishes(tmp_path):
    import json
    import subprocess
    import sys
    import time

    warehouse, copy, stop = tmp_path / "warehouse.duckdb", tmp_path / "analysts.duckdb", tmp_path / "stop"
    _marts(warehouse, 1)
    publish(warehouse, copy)
    analyst = subprocess.Popen([sys.executable, "-c", ANALYST, str(copy), str(stop)], stdout=subprocess.PIPE, text=True)
    publishes: list[tuple[float, float]] = []
    writing: list[tuple[float, float]] = []
    try:
        with duckdb.connect(str(copy), read_only=True) as long_reader:  # opened before any run
            for version in (2, 3):
                writer = subprocess.Popen(
                    [sys.executable, "-c", WRITER, str(warehouse), str(version), "3"],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert writer.stdout.readline().strip() == "writing"
                started = time.time()
                # The run really holds the warehouse: nobody else may even read it now.
                with pytest.raises(duckdb.Error, match="lock"):
                    duckdb.connect(str(warehouse), read_only=True)
                out, _ = writer.communicate(timeout=60)
                assert writer.returncode == 0 and out.startswith("done"), out
                writing.append((started, time.time()))
                # The run succeeded: publish its marts while the analyst keeps querying.
                started = time.time()
                publish(warehouse, copy)
                publishes.append((started, time.time()))
                assert long_reader.execute("SELECT count(*) FROM marts.dim_customers").fetchall() == [(_rows(1),)]
            time.sleep(0.3)
    finally:
        stop.touch()
        out, _ = analyst.communicate(timeout=60)
    queries = [json.loads(line) for line in out.splitlines()]

    assert [q for q in queries if "error" in q] == [], "every query against the copy succeeds"
    for q in queries:
        for table, (low, high, count) in q["seen"].items():
            assert low == high and count == _rows(low), f"{table}: a half-written copy {q['seen']}"
        assert len({low for low, _, _ in q["seen"].values()}) == 1, f"marts of two runs at once: {q['seen']}"

    def during(window: tuple[float, float]) -> list[dict]:
        return [q for q in queries if q["started"] < window[1] and q["ended"] > window[0]]

    for window in writing:
        assert len(during(window)) >= 10, "the analyst kept querying while the run wrote"
    for window in publishes:
        assert during(window), "a query overlapped each publish"
    versions = [q["seen"]["dim_customers"][0] for q in queries]
    assert versions == sorted(versions), "a new connection never goes back to older marts"
    assert versions[0] == 1 and versions[-1] == 3
