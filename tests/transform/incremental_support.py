"""What the incremental-equals-full-refresh tests share: a dbt run on a warehouse copy, and
the rows by which two builds of a relation differ."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from orchestration.paths import PROJECT_ROOT


def run_dbt(warehouse: Path, scratch: Path, *args: str) -> None:
    """`dbt <args>` on `warehouse`, its target and log under `scratch`; fails the test on an error."""
    env = {**os.environ, "TESSERA_WAREHOUSE": str(warehouse)}
    cmd = [str(Path(sys.executable).with_name("dbt")), *args]
    cmd += ["--target-path", str(scratch / "target"), "--log-path", str(scratch / "logs")]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT / "dbt_project", env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def differences(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[int, int, int]:
    """Rows of `relation` in the attached `incremental`, and how many rows are only there and
    only in the attached `full_refresh` (duplicates counted)."""
    rows = con.execute(f"SELECT count(*) FROM incremental.{relation}").fetchall()[0][0]
    only_incremental = con.execute(
        f"SELECT count(*) FROM (SELECT * FROM incremental.{relation} EXCEPT ALL SELECT * FROM full_refresh.{relation})"
    ).fetchall()[0][0]
    only_full = con.execute(
        f"SELECT count(*) FROM (SELECT * FROM full_refresh.{relation} EXCEPT ALL SELECT * FROM incremental.{relation})"
    ).fetchall()[0][0]
    return rows, only_incremental, only_full


def assert_equal_builds(incremental: Path, full_refresh: Path, relation: str, label: str = "") -> None:
    """`relation` has rows and is the same, row for row, in both warehouses."""
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{incremental}' AS incremental (READ_ONLY)")
        con.execute(f"ATTACH '{full_refresh}' AS full_refresh (READ_ONLY)")
        rows, only_incremental, only_full = differences(con, relation)
    print(f"{relation}{label}: {rows} rows, {only_incremental} only incremental, {only_full} only full refresh")
    assert rows > 0
    assert (only_incremental, only_full) == (0, 0)
