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
