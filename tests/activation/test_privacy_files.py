"""Personal data on disk outside the warehouse tables: pending load packages, and the
warehouse file rewrite that drops deleted rows' bytes."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from activation.privacy import files
from activation.privacy.person import Person
from ingestion.common.erasure import CHECKOUT_TOKEN


def _pending_package(pipelines_dir: Path, rows: str) -> tuple[Path, Path]:
    """A pending Mixpanel package: Parquet events from `rows` (device_id, checkout_id, user_id),
    and a JSON-lines file of two orders, hers and Ben's."""
    package = pipelines_dir / "mixpanel" / "load" / "new" / "1732500000.1" / "new_jobs"
    package.mkdir(parents=True)
    events = package / "events.abc.0.parquet"
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * FROM (VALUES {rows}) AS t(device_id, checkout_id, user_id)) TO '{events}' (FORMAT parquet)"
        )
    lines = package / "orders.abc.0.typed-jsonl"
    lines.write_text("".join(json.dumps({"email": e}) + "\n" for e in ("ana@example.com", "ben@example.com")))
    return events, lines


def _kept(events: Path) -> list[tuple]:
    with duckdb.connect() as con:
        return con.execute(f"SELECT device_id, checkout_id FROM read_parquet('{events}') ORDER BY ALL").fetchall()


def test_pending_packages_are_rewritten_without_her_records_only(tmp_path) -> None:
    her = Person()
    her.add("shopify", "email", "ana@example.com")
    her.add("mixpanel", "device_id", "dev_ana")
    # Her phone's event and her login elsewhere go; an anonymous event (every person column
    # empty) and someone else's stay.
    events, lines = _pending_package(
        tmp_path,
        "('dev_ana', NULL, NULL), ('dev_y', NULL, 'ANA@example.com'), ('dev_z', NULL, NULL), ('dev_z', NULL, 'ben')",
    )
    assert files.scrub_pending_packages(tmp_path, her) == 3
    assert _kept(events) == [("dev_z", None), ("dev_z", None)]
    assert [json.loads(line) for line in lines.read_text().splitlines()] == [{"email": "ben@example.com"}]


def test_pending_packages_lose_her_checkouts_events_on_a_shared_device_and_keep_other_checkouts(tmp_path) -> None:
    her = Person()
    her.add("shopify", "customer_id", "101")
    her.add(*CHECKOUT_TOKEN, "tok_a")
    # The family laptop: her guest checkout and her brother's; a numeric checkout id (Shopify's,
    # no token) equal to her customer id is another kind of id, and stays.
    events, _ = _pending_package(
        tmp_path, "('dev_home', 'tok_a', NULL), ('dev_home', 'tok_b', NULL), ('dev_x', '101', NULL)"
    )
    extracted = events.with_name("events.def.0.typed-jsonl")
    records = ({"checkout_id": "TOK_A"}, {"checkout_id": "tok_b"}, {"user_id": "tok_a"})
    extracted.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert files.scrub_pending_packages(tmp_path, her) == 2
    assert _kept(events) == [("dev_home", "tok_b"), ("dev_x", "101")]
    # As JSON lines too; a person field holding the token's text is no checkout of hers.
    assert [json.loads(line) for line in extracted.read_text().splitlines()] == [
        {"checkout_id": "tok_b"},
        {"user_id": "tok_a"},
    ]


def test_compaction_keeps_live_rows_drops_deleted_bytes_and_leaves_nothing_beside(tmp_path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("PRAGMA force_compression = 'uncompressed'")  # so the bytes can be searched
        con.execute("CREATE SCHEMA marts")
        con.execute(
            "CREATE TABLE marts.people AS SELECT i AS id, 'person' || i || '@example.com' AS email"
            " FROM range(50000) t(i)"
        )
        con.execute("DELETE FROM marts.people WHERE id = 4242")
        con.execute("CHECKPOINT")
    assert b"person4242@example.com" in warehouse.read_bytes(), "DuckDB keeps a deleted row's bytes"

    files.compact_warehouse(warehouse)

    assert b"person4242@example.com" not in warehouse.read_bytes()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT email) FROM marts.people").fetchall() == [(49999, 49999)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"], "no copy, WAL or spill left behind"
