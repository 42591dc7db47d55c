"""Incremental models equal a full refresh. After two nights of the pipeline (the second
brings a new day, events that arrived late for earlier days, and records the loaders changed),
each incremental table as the first night left it (sessions, checkout events, the identity's
device pairs and occurrences) is brought up to date by one incremental run, a copy of the same
warehouse is rebuilt from scratch, and the two are compared row for row."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from orchestration.paths import PROJECT_ROOT

# Whichever test comes first builds the shared two nights (two demo runs) in its setup.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# The incremental models, restored to the first night's state before the incremental run.
INCREMENTAL = (
    "intermediate.int_device_sessions",
    "intermediate.int_checkout_events_pivoted",
    "intermediate.int_identity__mixpanel_pairs",
    "intermediate.int_identity__record_occurrences",
)
SELECTED = " ".join(relation.split(".")[1] for relation in INCREMENTAL) + " fct_checkouts"
# Each must come out the same from both warehouses (int_sessions is a view on the sessions,
# int_identity__occurrences one on the two halves of the identity's occurrences).
COMPARED = (
    *INCREMENTAL,
    "intermediate.int_sessions",
    "intermediate.int_identity__occurrences",
    "marts.fct_checkouts",
)
# What the loads and an erasure can also do to the records the identity reads, played on both
# copies: a record removed from raw, and a Mailchimp member (one record, keyed by the address's
# unique_email_id) that a later load added to a second audience under another address.
GONE_ORDER = "SELECT min(id) FROM raw_shopify.orders"
SHARED_MEMBER = "SELECT min(unique_email_id) FROM raw_mailchimp.members"
LATER_LOAD = "9999999999.000001"
# A contact whose rows went from the incremental table alone (as an erasure takes a record whole
# while raw may keep it): the run must write it back.
LOST_CONTACT = "SELECT min(contact_id) FROM staging.stg_hubspot__contacts"
# Incremental models that append what changed after their pre-hook deleted its old rows.
APPENDED = ("int_identity__record_occurrences",)


def _change_raw(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"DELETE FROM raw_shopify.orders WHERE id = ({GONE_ORDER})")
        con.execute(
            "INSERT INTO raw_mailchimp.members SELECT * REPLACE ("
            "'second_audience' AS list_id, md5(id) AS id, 'other.' || email_address AS email_address, "
            f"'{LATER_LOAD}' AS _dlt_load_id) FROM raw_mailchimp.members WHERE unique_email_id = ({SHARED_MEMBER})"
        )


def _dbt(warehouse: Path, scratch: Path, *args: str) -> None:
    env = {**os.environ, "TESSERA_WAREHOUSE": str(warehouse)}
    cmd = [str(Path(sys.executable).with_name("dbt")), *args]
    cmd += ["--target-path", str(scratch / "target"), "--log-path", str(scratch / "logs")]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT / "dbt_project", env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


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
    _change_raw(incremental)
    with duckdb.connect(str(incremental)) as con:
        con.execute(f"ATTACH '{first_night}' AS first_night (READ_ONLY)")
        for relation in INCREMENTAL:
            con.execute(f"CREATE OR REPLACE TABLE {relation} AS SELECT * FROM first_night.{relation}")
        con.execute(
            "DELETE FROM intermediate.int_identity__record_occurrences "
            f"WHERE record_id = 'hubspot_contact:' || ({LOST_CONTACT})"
        )
    _dbt(incremental, scratch / "incremental", "run", "--select", SELECTED, "--vars", now)
    compiled = scratch / "incremental" / "target" / "run" / "tessera" / "models" / "intermediate"
    for relation in INCREMENTAL:
        model = relation.split(".")[1]
        sql = next(compiled.rglob(f"{model}.sql")).read_text().lower()
        if model in APPENDED:
            assert sql.lstrip().startswith("insert into"), f"{model}'s run was incremental (append)"
        else:
            assert "delete from" in sql, f"{model}'s run was incremental (delete+insert)"
    # Full refresh of the same data.
    full_refresh = scratch / "full_refresh.duckdb"
    shutil.copy(data / "warehouse.duckdb", full_refresh)
    _change_raw(full_refresh)
    _dbt(
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


def _differences(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[int, int, int]:
    rows = con.execute(f"SELECT count(*) FROM incremental.{relation}").fetchall()[0][0]
    only_incremental = con.execute(
        f"SELECT count(*) FROM (SELECT * FROM incremental.{relation} EXCEPT ALL SELECT * FROM full_refresh.{relation})"
    ).fetchall()[0][0]
    only_full = con.execute(
        f"SELECT count(*) FROM (SELECT * FROM full_refresh.{relation} EXCEPT ALL SELECT * FROM incremental.{relation})"
    ).fetchall()[0][0]
    return rows, only_incremental, only_full


@pytest.mark.parametrize("relation", COMPARED)
def test_an_incremental_night_equals_a_full_refresh(warehouses, relation):
    with duckdb.connect() as con:
        for name in ("incremental", "full_refresh"):
            con.execute(f"ATTACH '{warehouses[name]}' AS {name} (READ_ONLY)")
        rows, only_incremental, only_full = _differences(con, relation)
    print(f"{relation}: {rows} rows, {only_incremental} only incremental, {only_full} only full refresh")
    assert rows > 0
    assert (only_incremental, only_full) == (0, 0)


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


def test_the_second_night_changed_and_added_identity_records(warehouses):
    """Guards the test itself: the incremental run had new, changed, gone and lost records to
    deal with, and kept the records no load had touched."""
    table = "intermediate.int_identity__record_occurrences"
    with duckdb.connect() as con:
        for name in ("first_night", "incremental"):
            con.execute(f"ATTACH '{warehouses[name]}' AS {name} (READ_ONLY)")
        changed, kept = con.execute(
            f"""
            SELECT (SELECT count(DISTINCT record_id) FROM (
                       SELECT * FROM incremental.{table} EXCEPT SELECT * FROM first_night.{table})),
                   (SELECT count(DISTINCT record_id) FROM incremental.{table}
                    WHERE _dlt_load_id IN (SELECT _dlt_load_id FROM first_night.{table}))
            """
        ).fetchall()[0]
        # The order was removed after the first night: its id is the first night's smallest.
        first_order = con.execute(GONE_ORDER.replace("raw_shopify", "first_night.raw_shopify")).fetchall()[0][0]
        con.execute("USE incremental")
        gone = con.execute(f"SELECT count(*) FROM {table} WHERE record_id = 'shopify_order:' || ?", [first_order])
        gone = gone.fetchall()[0][0]
        member = con.execute(f"SELECT 'mailchimp_member:' || ({SHARED_MEMBER})").fetchall()[0][0]
        shared = con.execute(
            f"SELECT DISTINCT id_value FROM {table} WHERE record_id = ? AND id_type = 'email'", [member]
        )
        shared = len(shared.fetchall())
        lost = con.execute(f"SELECT count(*) FROM {table} WHERE record_id = 'hubspot_contact:' || ({LOST_CONTACT})")
        lost = lost.fetchall()[0][0]
    print(f"record occurrences: {changed} records new or changed, {kept} kept from the first night")
    assert changed > 0 and kept > changed
    assert gone == 0, "the order removed from raw left the table"
    assert shared == 2, "the member's record holds both audiences' addresses"
    assert lost > 0, "the contact lost from the table was written back"
