"""The warehouse file rewrite that drops deleted rows' bytes."""

from __future__ import annotations

import duckdb

from activation.privacy import files


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
