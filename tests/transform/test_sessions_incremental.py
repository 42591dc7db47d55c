"""Incremental models equal a full refresh. After two nights of the pipeline (the second
brings a new day and events that arrived late for earlier days), each incremental table as the
first night left it (sessions, checkout events, the identity's device pairs, the checkouts) is
brought up to date by one incremental run, a copy of the same warehouse is rebuilt from
scratch, and the two are compared row for row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.transform.incremental_support import assert_equal_builds, run_dbt

# Whichever test comes first builds the shared two nights (two demo runs) in its setup.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# The incremental models, restored to the first night's state before the incremental run.
INCREMENTAL = (
    "intermediate.int_device_sessions",
    "intermediate.int_checkout_events_pivoted",
    "intermediate.int_identity__mixpanel_pairs",
    "marts.fct_checkouts",
)
# What fct_checkouts recorded having read, restored with it.
RECORDED = ("intermediate.fct_checkouts__watermarks",)
# fct_checkouts reads the checkouts' line items, a table rebuilt whole.
SELECTED = " ".join(relation.split(".")[1] for relation in INCREMENTAL) + " int_checkout_line_items_unioned"
# Each must come out the same from both warehouses (int_sessions is a view on the sessions).
COMPARED = (*INCREMENTAL, "intermediate.int_sessions")


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory, small_world_nights) -> dict[str, Path]:
    # Two nights of the small world: the second loaded a new day of events and events of
    # earlier days that arrived late.
    first, second = small_world_nights
    data, first_night = second.data, first.snapshot
    scratch = tmp_path_factory.mktemp("sessions_scratch")
    clock = json.loads((data / "sandbox" / "world.json").read_text())["clock"]
    now = json.dumps({"tessera__now": clock})
    # Incremental: the tables as the first night left them, brought up to date by one run.
    incremental = scratch / "incremental.duckdb"
    shutil.copy(data / "warehouse.duckdb", incremental)
    with duckdb.connect(str(incremental)) as con:
        con.execute(f"ATTACH '{first_night}' AS first_night (READ_ONLY)")
        for relation in (*INCREMENTAL, *RECORDED):
            con.execute(f"CREATE OR REPLACE TABLE {relation} AS SELECT * FROM first_night.{relation}")
    run_dbt(incremental, scratch / "incremental", "run", "--select", SELECTED, "--vars", now)
    compiled = scratch / "incremental" / "target" / "run" / "tessera" / "models"
    for relation in INCREMENTAL:
        model = relation.split(".")[1]
        sql = next(compiled.rglob(f"{model}.sql")).read_text().lower()
        assert "delete from" in sql, f"{model}'s run was incremental (delete+insert)"
    # Full refresh of the same data.
    full_refresh = scratch / "full_refresh.duckdb"
    shutil.copy(data / "warehouse.duckdb", full_refresh)
    run_dbt(
        full_refresh,
        scratch / "full_refresh",
        "run",
        "--full-refresh",
        "--select",
        SELECTED,
        "--vars",
        now,
    )
    return {"first_night": first_night, "incremental": incremental, "full_refresh": full_refresh}


@pytest.mark.parametrize("relation", COMPARED)
def test_an_incremental_night_equals_a_full_refresh(warehouses, relation):
    assert_equal_builds(warehouses["incremental"], warehouses["full_refresh"], relation)


def test_the_second_night_changed_earlier_sessions_through_late_events(warehouses):
    """Guards the test itself: the incremental run had late events to fold into old sessions."""
    with duckdb.connect() as con:
        for name in ("first_night", "incremental"):
            con.execute(f"ATTACH '{warehouses[name]}' AS {name} (READ_ONLY)")
        before, after, changed = con.execute(
            """
            SELECT (SELECT count(*) FROM first_night.intermediate.int_device_sessions),
                   (SELECT count(*) FROM incremental.intermediate.int_device_sessions),
                   (SELECT count(*) FROM (
                       SELECT session_id, events, ended_at FROM first_night.intermediate.int_device_sessions
                       EXCEPT
                       SELECT session_id, events, ended_at FROM incremental.intermediate.int_device_sessions))
            """
        ).fetchall()[0]
    print(f"sessions: {before} after the first night, {after} after the second, {changed} earlier ones changed")
    assert after > before
    assert changed > 0
