"""Helpers the source tests share: the world's truth, the sandbox's counters, the loaded warehouse.

A test's world is the sandbox's directory: `world.json` (clock, credentials, ids) and the store's
Parquet tables. A test's warehouse and dlt state live in its `tmp_path`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from dlt.sources import DltSource

from ingestion.common.http import RetryPolicy
from ingestion.pipelines import load, make_pipeline

# Every kind of fault at once; each test picks its own malformed rate and seed.
FAULTS: dict[str, Any] = {
    "rate_429": 0.2,
    "rate_500": 0.1,
    "rate_duplicate": 0.2,
    "drift": "retyped_field",
    "retry_after_seconds": 0.2,
}
# The reasons a record is quarantined for: the sandbox drops its id or garbles its timestamp.
QUARANTINE_REASONS = ("missing primary key", "unparseable timestamp")


# -- the world's truth -----------------------------------------------------------------------------


def world_meta(world: Path) -> dict[str, Any]:
    """The world's `world.json`: its clock, the credentials it issues, its ids."""
    return json.loads((world / "world.json").read_text())


def credentials(world: Path, vendor: str) -> dict[str, str]:
    """The credentials the world issues for `vendor`."""
    return world_meta(world)["credentials"][vendor]


def store_rows(world: Path, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
    """`sql` over the world's store: `{store}` stands for its directory (`'{store}/<table>.parquet'`
    reads a table) and `$clock`, which `sql` must use, for the world's clock (what the API shows)."""
    with duckdb.connect() as con:
        sql = sql.replace("{store}", str(world / "store"))
        return con.execute(sql, {"clock": world_meta(world)["clock"], **(params or {})}).fetchall()


def store_count(world: Path, sql: str, params: Mapping[str, Any] | None = None) -> int:
    """The single number `sql` (see `store_rows`) counts."""
    return store_rows(world, sql, params)[0][0]


# -- the sandbox -----------------------------------------------------------------------------------


def counters(sandbox) -> dict[str, Any]:
    """The sandbox's counters: requests, responses by status and faults injected, per vendor."""
    return sandbox.control("GET", "counters").json()


def requests_made(sandbox, vendor: str) -> int:
    """Requests `vendor`'s API has served since the counters were last reset."""
    return counters(sandbox)["requests"].get(vendor, 0)


# -- the pipeline and the warehouse ----------------------------------------------------------------


def local_pipeline(vendor: str, directory: Path) -> dlt.Pipeline:
    """`vendor`'s pipeline with its warehouse and its state in `directory`."""
    return make_pipeline(vendor, directory / "warehouse.duckdb", directory / "dlt")


def warehouse_rows(directory: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """`sql` over the warehouse `local_pipeline` loaded in `directory`, read-only."""
    with duckdb.connect(str(directory / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def row_counts(directory: Path, table: str, key: str = "id") -> tuple[int, int]:
    """(rows, distinct `key` values) of a loaded `table` (`raw_<vendor>.<table>`)."""
    return warehouse_rows(directory, f"SELECT count(*), count(DISTINCT {key}) FROM {table}")[0]


def columns(directory: Path, table: str) -> dict[str, str]:
    """A loaded table's columns and their types."""
    return {name: kind for name, kind, *_ in warehouse_rows(directory, f"DESCRIBE {table}")}


def variant_columns(directory: Path, schema: str, tables: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(table, column) of each variant column dlt forked for a value of another type
    (`<column>__v_<type>`) in `schema`, in `tables` only if given."""
    rows = warehouse_rows(
        directory,
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = ? AND contains(column_name, '__v_')",
        [schema],
    )
    wanted = None if tables is None else set(tables)
    return [row for row in rows if wanted is None or row[0] in wanted]


def assert_quarantined(directory: Path, schema: str) -> list[tuple[str, str, str]]:
    """The (resource, reason, record) rows of `schema`'s quarantine, after checking there are
    some and that each gives one of the `QUARANTINE_REASONS`."""
    rows = warehouse_rows(directory, f"SELECT resource, reason, record FROM {schema}.quarantine")
    assert rows, "the malformed records were not quarantined"
    assert all(reason.startswith(QUARANTINE_REASONS) for _, reason, _ in rows)
    return rows


def cursor_values(pipeline: dlt.Pipeline, source: str, cursors: Mapping[str, str]) -> dict[str, Any]:
    """The last value of each resource's incremental cursor, for `cursors` (resource -> cursor)."""
    resources = pipeline.state["sources"][source]["resources"]
    return {name: resources[name]["incremental"][cursor]["last_value"] for name, cursor in cursors.items()}


def extracted(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows the pipeline's last run extracted, per table."""
    return pipeline.last_trace.last_normalize_info.row_counts


# -- failures --------------------------------------------------------------------------------------


def assert_load_fails_naming(
    source: DltSource, pipeline: dlt.Pipeline, setting: str, *, secret: str | None = None
) -> PipelineStepFailed:
    """Loading `source` fails with an error that names `setting` and never shows `secret`."""
    with pytest.raises(PipelineStepFailed, match=setting) as failure:
        load(source, pipeline)
    if secret is not None:
        assert secret not in str(failure.value)
    return failure.value


def assert_failing_run_keeps_cursors(
    sandbox,
    pipeline: dlt.Pipeline,
    source: Callable[..., DltSource],
    cursors: Callable[[dlt.Pipeline], dict[str, Any]],
) -> dict[str, Any]:
    """Load, let a day pass, then check a run that fails on HTTP 500s leaves the cursors as they
    were; returns them. The sandbox still injects the 500s: the caller clears them to resume.

    `source(**kwargs)` makes the vendor's source over `sandbox`; `cursors` reads a pipeline's."""
    load(source(), pipeline)
    before = cursors(pipeline)
    sandbox.control("POST", "clock/advance", json={"days": 1})

    sandbox.set_faults(rate_500=1.0)
    with pytest.raises(PipelineStepFailed, match=r"HTTP 500 after 2 attempt"):
        load(source(retry_policy=RetryPolicy(max_attempts=2, backoff_base=0.01)), pipeline)
    assert cursors(pipeline) == before
    return before
