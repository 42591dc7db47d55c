"""A missed night is caught up by the next run: nothing is lost when the nightly run skips a night.

Two copies of the same world after the same first night: one plays the next two nights one by
one, the other skips a night (the world's clock moves two days) and runs once. The loaders'
cursors take both days at once and the incremental models take both days' events, so the raw
tables and the marts built from them come out the same. What differs is history that depends
on which nights ran (when an identity change was logged, what was pushed on the skipped night),
which is left out of the comparison.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from orchestration.defs.schedules import (
    NOW_TAG,
    NightlySettings,
    build_nightly_schedule,
    nightly_job,
    run_logical_now,
    tick_tags,
)
from tests.demo_runs import run_demo


def end_to_end(test):
    """Slow: the first such test builds the shared two nights (two demo runs) and two more."""
    return pytest.mark.slow(pytest.mark.timeout(1800)(test))


# Marts and the models under them that must not depend on whether a night was skipped.
COMPARED = (
    "intermediate.int_device_sessions",
    "intermediate.int_sessions",
    "intermediate.int_identity__mixpanel_pairs",
    "marts.fct_checkouts",
    "marts.fct_checkout_funnel_steps",
    "marts.customer_identifiers",
    "marts.dim_customers",
)


def _demo(data: Path, *extra: str) -> None:
    """The demo's nightly run again in `data`, on the world already there (same seed and size)."""
    meta = json.loads((data / "sandbox" / "world.json").read_text())
    run_demo(data, meta["seed"], meta["customers"], meta["days"], *extra)


@pytest.fixture(scope="module")
def caught_up(tmp_path_factory, small_world_nights) -> dict[str, Path]:
    """Warehouses at the same world clock, two days after the first night: one per way there."""
    first, second = small_world_nights
    root = tmp_path_factory.mktemp("catch_up")
    # Night by night: the shared second night, then the third.
    every_night = root / "every_night"
    shutil.copytree(second.data, every_night)
    _demo(every_night, "--advance-days", "1")
    # One night skipped: from the first night straight to the third.
    skipped = root / "skipped"
    shutil.copytree(first.snapshot.parent, skipped)
    _demo(skipped, "--advance-days", "2")
    clocks = {json.loads((d / "sandbox" / "world.json").read_text())["clock"] for d in (every_night, skipped)}
    assert len(clocks) == 1, f"both ways must end at the same world clock, got {clocks}"
    return {"every_night": every_night / "warehouse.duckdb", "skipped": skipped / "warehouse.duckdb"}


# Columns whose value depends on which nights ran, by design: the earliest consent signal is read
# from the platforms' last-changed times, which the pushes themselves move.
LEFT_OUT = {"marts.dim_customers": {"email_consent_source"}}


def _attached(warehouses: dict[str, Path]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name, path in warehouses.items():
        con.execute(f"ATTACH '{path}' AS {name} (READ_ONLY)")
        # A customer id is kept from run to run, so a person first seen on the skipped night has
        # another id after the skip: compare people by their smallest identifier instead.
        con.execute(
            f"CREATE TEMP TABLE {name}_people AS SELECT customer_id, "
            f"min(source || ':' || id_type || ':' || id_value) AS person "
            f"FROM {name}.marts.customer_identifiers GROUP BY customer_id"
        )
    return con


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    schema, table = relation.split(".")
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = 'every_night' "
        "AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [schema, table],
    ).fetchall()
    # dlt's bookkeeping (load ids, row ids) and the quarantine's stamp say when a run saw a row,
    # not what the row holds.
    left_out = LEFT_OUT.get(relation, set())
    return [
        name for (name,) in rows if not name.startswith("_dlt") and name != "quarantined_at" and name not in left_out
    ]


def _differences(
    con: duckdb.DuckDBPyConnection, relation: str, columns: list[str] | None = None
) -> tuple[int, int, int]:
    """(rows night by night, rows only night by night, rows only after the skipped night)."""
    columns = columns or _columns(con, relation)
    assert columns, f"{relation} has no columns in the night-by-night warehouse"

    def count(query: str) -> int:
        return con.execute(f"SELECT count(*) FROM ({query})").fetchall()[0][0]

    # The vendors' own customer ids (raw tables) are not Tessera's customers.
    by_person = "customer_id" in columns and not relation.startswith("raw_")

    def rows(db: str) -> str:
        selected = ", ".join(
            "coalesce(people.person, r.customer_id)" if c == "customer_id" and by_person else f'r."{c}"'
            for c in columns
        )
        people = f"LEFT JOIN {db}_people AS people USING (customer_id)" if by_person else ""
        return f"SELECT {selected} FROM {db}.{relation} AS r {people}"

    every, skipped = rows("every_night"), rows("skipped")
    return count(every), count(f"{every} EXCEPT ALL {skipped}"), count(f"{skipped} EXCEPT ALL {every}")


# Raw tables that the pushes write into as well (list memberships, profile properties, tags, the
# events a push sends): what they hold depends on which nights pushed, so only their records' ids
# are compared.
PUSHED_INTO = {
    "raw_klaviyo.profiles": "id",
    "raw_klaviyo.list_memberships": None,
    "raw_klaviyo.events": None,
    "raw_mailchimp.members": "id",
    "raw_mailchimp.members__tags": None,
}


def _raw_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = 'every_night' "
        "AND schema_name LIKE 'raw\\_%' ESCAPE '\\' AND schema_name NOT LIKE '%\\_staging' ESCAPE '\\' "
        "AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\' ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


@pytest.mark.parametrize(
    ("timezone", "tick", "now"),
    [
        ("UTC", datetime(2026, 11, 2, 3, tzinfo=UTC), "2026-11-02T03:00:00+00:00"),
        ("Europe/Berlin", datetime(2026, 11, 2, 3, tzinfo=ZoneInfo("Europe/Berlin")), "2026-11-02T02:00:00+00:00"),
    ],
)
def test_a_run_launched_on_time_reads_its_tick_as_now(monkeypatch, timezone, tick, now):
    monkeypatch.delenv("TESSERA_NOW", raising=False)
    assert tick_tags(tick, launched_at=tick + timedelta(seconds=20)) == {NOW_TAG: now}
    assert run_logical_now(tick_tags(tick, launched_at=tick)) == now


def test_a_run_launched_hours_after_its_tick_reads_its_launch_as_now():
    # The daemon was down at 03:00 and launches that tick's run at 09:00: its loads read the
    # vendors up to 09:00, so a 03:00 "now" would find records from the future (the raw gates stop
    # the night) and miss orders placed since (an abandoned-cart email to someone who bought).
    tick = datetime(2026, 11, 2, 3, tzinfo=UTC)
    assert tick_tags(tick, launched_at=datetime(2026, 11, 2, 9, tzinfo=UTC)) == {NOW_TAG: "2026-11-02T09:00:00+00:00"}


def test_the_schedule_tags_each_run_with_its_now(monkeypatch):
    monkeypatch.delenv("TESSERA_NOW", raising=False)
    schedule = build_nightly_schedule(NightlySettings(cron="0 3 * * *", timezone="UTC"))
    tick = datetime.now(UTC).replace(microsecond=0)
    with dg.build_schedule_context(scheduled_execution_time=tick) as context:
        request = schedule.evaluate_tick(context).run_requests[0]
    assert run_logical_now(request.tags) == tick.isoformat()


def test_an_explicit_now_wins_over_the_tag(monkeypatch):
    # The sandbox's world clock (or a replay by hand) is set in the environment.
    monkeypatch.setenv("TESSERA_NOW", "2026-10-01T00:00:00Z")
    assert run_logical_now({NOW_TAG: "2026-11-02T03:00:00+00:00"}) == "2026-10-01T00:00:00Z"


def test_the_schedule_is_not_partitioned_so_downtime_brings_one_catch_up_run():
    # Dagster replays every missed tick only for a partitioned schedule; ours must launch one run
    # (the latest tick), which takes every missed day from the cursors.
    assert nightly_job.partitions_def is None


@end_to_end
def test_the_loads_take_both_days_of_a_skipped_night(caught_up):
    with _attached(caught_up) as con:
        raw = _raw_tables(con)
        assert "raw_mixpanel.events" in raw and "raw_shopify.orders" in raw, raw
        differences = {
            relation: _differences(con, relation, [PUSHED_INTO[relation]] if PUSHED_INTO.get(relation) else None)
            for relation in raw
            if relation not in PUSHED_INTO or PUSHED_INTO[relation]
        }
    lost = {relation: d for relation, d in differences.items() if d[1] or d[2]}
    assert not lost, f"raw rows that differ (rows, only night by night, only after the skip): {lost}"
    assert differences["raw_mixpanel.events"][0] > 0


@end_to_end
@pytest.mark.parametrize("relation", COMPARED)
def test_the_marts_agree_after_a_skipped_night(caught_up, relation):
    with _attached(caught_up) as con:
        rows, only_every_night, only_skipped = _differences(con, relation)
    assert rows > 0, f"{relation} is empty: the comparison would prove nothing"
    assert (only_every_night, only_skipped) == (0, 0), (
        f"{relation}: {only_every_night} of {rows} rows only night by night, {only_skipped} only after the skip"
    )
