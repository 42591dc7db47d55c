"""The checkouts' price signals (int_traits__checkout_price_signals, incremental) and the price
sensitivity rebuilt whole from them equal a full refresh.

Two checks, each comparing an incremental run with `dbt run --full-refresh` of the same
warehouse, row for row:
- a real second night: the table as the first night left it, brought up to date by one run
  after the second night's loads (new days and events that arrived late);
- identity moves with no new event: on top of that, one customer merged into another and one
  device split off to a customer of its own, the way int_identity__resolved reports them
  (`previous_customer_id`), so the checkouts of the devices and accounts involved must be
  rebuilt although none of their events arrived again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.transform.incremental_support import assert_equal_builds, run_dbt

# Whichever test comes first builds the shared two nights (two demo runs) in its setup.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

INCREMENTAL = ("intermediate.int_traits__checkout_price_signals",)
SELECTED = "int_traits__checkout_price_signals int_traits__price_sensitivity"
# Each must come out the same from both warehouses (price sensitivity is rebuilt whole from the
# incremental checkout signals).
COMPARED = (*INCREMENTAL, "intermediate.int_traits__price_sensitivity")
SPLIT_CUSTOMER = "cus_split_off_by_the_test"


def _incremental_and_full(warehouse: Path, scratch: Path, run_vars: str) -> tuple[Path, Path]:
    """An incremental run on a copy of `warehouse` and a full refresh on another copy."""
    incremental, full_refresh = scratch / "incremental.duckdb", scratch / "full_refresh.duckdb"
    shutil.copy(warehouse, incremental)
    shutil.copy(warehouse, full_refresh)
    run_dbt(incremental, scratch / "incremental", "run", "--select", SELECTED, "--vars", run_vars)
    compiled = scratch / "incremental" / "target" / "run" / "tessera" / "models" / "intermediate"
    for relation in INCREMENTAL:
        model = relation.split(".")[1]
        sql = next(compiled.rglob(f"{model}.sql")).read_text().lower()
        assert "delete from" in sql, f"{model}'s run was incremental (delete+insert)"
    run_dbt(full_refresh, scratch / "full_refresh", "run", "--full-refresh", "--select", SELECTED, "--vars", run_vars)
    return incremental, full_refresh


@pytest.fixture(scope="module")
def nights(tmp_path_factory, small_world_nights) -> dict[str, Path]:
    first, second = small_world_nights
    data, first_night = second.data, first.snapshot
    scratch = tmp_path_factory.mktemp("traits_scratch")
    clock = json.loads((data / "sandbox" / "world.json").read_text())["clock"]
    run_vars = json.dumps({"tessera__now": clock})
    # The second night's warehouse with these tables as the first night left them.
    start = scratch / "start.duckdb"
    shutil.copy(data / "warehouse.duckdb", start)
    with duckdb.connect(str(start)) as con:
        con.execute(f"ATTACH '{first_night}' AS first_night (READ_ONLY)")
        for relation in INCREMENTAL:
            con.execute(f"CREATE OR REPLACE TABLE {relation} AS SELECT * FROM first_night.{relation}")
    incremental, full_refresh = _incremental_and_full(start, scratch, run_vars)
    return {
        "first_night": first_night,
        "incremental": incremental,
        "full_refresh": full_refresh,
        "scratch": scratch,
        "vars": run_vars,
    }


def _move_identities(warehouse: Path) -> dict[str, str]:
    """In `warehouse` (tables up to date), what an identity run reports when one customer
    (`merged`) merges into another (`kept`) and one device of a third (`split`) splits off to a
    customer of its own, with nothing loaded: int_identity__records gives the records their new
    customer, int_identity__resolved their identifiers, with the old one as previous customer
    (every other identifier stays where it was)."""
    with duckdb.connect(str(warehouse)) as con:
        # Customers with checkouts tracked on a device nobody logged in on, most checkouts first.
        rows = con.execute(
            """
            SELECT signals.customer_id, arg_max(events.device_id, events.occurred_at)
            FROM intermediate.int_traits__checkout_price_signals AS signals
            JOIN staging.stg_mixpanel__events AS events ON events.checkout_id = signals.checkout_id
            WHERE signals.customer_id IS NOT NULL
            GROUP BY signals.customer_id
            HAVING count(events.user_id) = 0
            ORDER BY count(DISTINCT signals.checkout_id) DESC, signals.customer_id
            """
        ).fetchall()
        (split, device), (merged, _), (kept, _) = rows[:3]
        con.execute(
            "UPDATE intermediate.int_identity__resolved SET previous_customer_id = customer_id "
            "WHERE previous_customer_id IS DISTINCT FROM customer_id"
        )
        con.execute(
            "UPDATE intermediate.int_identity__resolved SET customer_id = ?, previous_customer_id = customer_id "
            "WHERE customer_id = ?",
            [kept, merged],
        )
        records = "UPDATE intermediate.int_identity__records SET customer_id = ?"
        con.execute(f"{records} WHERE customer_id = ?", [kept, merged])
        node = f"mixpanel_device:{device}"
        con.execute(
            "UPDATE intermediate.int_identity__resolved SET customer_id = ?, previous_customer_id = customer_id "
            "WHERE node = ?",
            [SPLIT_CUSTOMER, node],
        )
        con.execute(f"{records} WHERE record_id = ?", [SPLIT_CUSTOMER, node])
    return {"kept": kept, "merged": merged, "split": split, "device": device}


@pytest.fixture(scope="module")
def moves(nights) -> dict:
    scratch = nights["scratch"] / "moves"
    scratch.mkdir()
    start = scratch / "start.duckdb"
    shutil.copy(nights["incremental"], start)
    moved = _move_identities(start)
    incremental, full_refresh = _incremental_and_full(start, scratch, nights["vars"])
    return {**moved, "start": start, "incremental": incremental, "full_refresh": full_refresh}


@pytest.mark.parametrize("relation", COMPARED)
def test_an_incremental_night_equals_a_full_refresh(nights, relation):
    assert_equal_builds(nights["incremental"], nights["full_refresh"], relation)


@pytest.mark.parametrize("relation", COMPARED)
def test_an_incremental_run_after_identity_moves_equals_a_full_refresh(moves, relation):
    assert_equal_builds(moves["incremental"], moves["full_refresh"], relation, " after the moves")


def test_the_second_night_changed_some_rows_and_left_others(nights):
    """Guards the night test: the second night's loads changed rows of these tables, and left
    rows the incremental run must keep as they were."""
    with duckdb.connect() as con:
        for name in ("first_night", "full_refresh"):
            con.execute(f"ATTACH '{nights[name]}' AS {name} (READ_ONLY)")
        for relation in INCREMENTAL:
            changed, kept = con.execute(
                f"""
                SELECT (SELECT count(*) FROM (SELECT * FROM full_refresh.{relation}
                                              EXCEPT SELECT * FROM first_night.{relation})),
                       (SELECT count(*) FROM (SELECT * FROM full_refresh.{relation}
                                              INTERSECT SELECT * FROM first_night.{relation}))
                """
            ).fetchall()[0]
            print(f"{relation}: {changed} rows changed by the second night, {kept} kept")
            assert changed > 0
            assert kept > 0


def test_the_moves_rebuilt_the_checkouts_they_touched(moves):
    """Guards the moves test: the merged customer's checkouts are the kept one's now, and the
    split-off device's last checkout belongs to its new customer."""
    with duckdb.connect() as con:
        for name in ("start", "incremental"):
            con.execute(f"ATTACH '{moves[name]}' AS {name} (READ_ONLY)")
        checkouts = "intermediate.int_traits__checkout_price_signals"
        counts = "count(*) FILTER (WHERE customer_id = ?)"
        merged, kept_before, kept_after, split_off = con.execute(
            f"SELECT (SELECT {counts} FROM incremental.{checkouts}), (SELECT {counts} FROM start.{checkouts}), "
            f"(SELECT {counts} FROM incremental.{checkouts}), (SELECT {counts} FROM incremental.{checkouts})",
            [moves["merged"], moves["kept"], moves["kept"], SPLIT_CUSTOMER],
        ).fetchall()[0]
        print(f"checkouts: merged {merged}, kept {kept_before} -> {kept_after}, split off {split_off}")
        assert merged == 0
        assert kept_after > kept_before
        assert split_off > 0
