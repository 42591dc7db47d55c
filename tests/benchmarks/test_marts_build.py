"""The marts build benchmark on a small world: both dbt builds run and the report has its shape."""

from __future__ import annotations

import re
from datetime import timedelta

import duckdb

from benchmarks import marts_build
from benchmarks.marts_raw import load_id, write_raw


def test_small_world_reports_full_and_incremental_builds(capsys, tmp_path):
    assert marts_build.main(["--customers", "2000", "--days", "30", "--keep", str(tmp_path)]) == 0
    out = capsys.readouterr().out

    assert re.search(r"^2,000 customers, [\d,]+ Mixpanel events after the extra day$", out, re.MULTILINE), out
    seconds = {}
    for run in ("full", "incremental"):
        match = re.search(rf"^ *{run}: +(\d+\.\d) s  peak (\d+\.\d\d) GiB  slowest \[\('(\w+)', ", out, re.MULTILINE)
        assert match, out
        seconds[run] = float(match.group(1))
        assert 0 < float(match.group(2)) < 8, "peak memory of the dbt process tree"
        spent = re.search(
            rf"^ *{run}: .*\n +node time \(summed over dbt's threads\): incremental models (\d+\.\d) s, "
            r"models rebuilt whole (\d+\.\d) s, data tests (\d+\.\d) s$",
            out,
            re.MULTILINE,
        )
        assert spent, out
        assert all(float(part) > 0 for part in spent.groups()), "every kind of node ran"
    ratio = re.search(r"^incremental / full = (\d+\.\d)% -> target 15%: (met|MISSED)$", out, re.MULTILINE)
    assert ratio, out
    assert abs(float(ratio.group(1)) - 100 * seconds["incremental"] / seconds["full"]) < 0.2

    # as in the nightly, the next night's build reuses the first one's parse
    assert "Starting full parse" in (tmp_path / "target-full" / "logs" / "dbt.log").read_text()
    assert "Starting full parse" not in (tmp_path / "target-incremental" / "logs" / "dbt.log").read_text()

    # the builds were real: the marts exist, and the extra day reached the raw events and the marts
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.dim_customers").fetchall()[0][0] > 1000
        newest_event, newest_checkout = con.execute(
            "SELECT (SELECT max(time) FROM raw_mixpanel.events), (SELECT max(started_at) FROM marts.fct_checkouts)"
        ).fetchall()[0]
    clock = marts_build.world_clock(tmp_path / "world")
    assert newest_event > clock, "the next day's events were appended"
    assert newest_checkout > clock, "the incremental build picked them up"


def test_the_next_nights_load_id_marks_only_the_rows_it_brought(tmp_path):
    """As dlt stamps them: rows a night left as they were keep the first load's id."""
    world = marts_build._world(tmp_path, seed=1, customers=300, days=20)
    clock = marts_build.world_clock(world)
    first, second = load_id(clock), load_id(clock + timedelta(days=1))
    with duckdb.connect(str(tmp_path / "raw.duckdb")) as con:
        write_raw(con, world / "store", clock)
        before = dict(con.execute("SELECT id, updated_at FROM raw_shopify.customers").fetchall())
        write_raw(con, world / "store", clock + timedelta(days=1), since=clock)
        rows = con.execute("SELECT id, updated_at, _dlt_load_id FROM raw_shopify.customers").fetchall()
        events = dict(con.execute("SELECT _dlt_load_id, count(*) FROM raw_mixpanel.events GROUP BY 1").fetchall())
    assert first < second, "load ids order as the loads did"
    for customer_id, updated_at, stamped in rows:
        unchanged = before.get(customer_id) == updated_at
        assert stamped == (first if unchanged else second), (customer_id, updated_at, before.get(customer_id))
    assert {stamped for *_, stamped in rows} == {first, second}, "the night changed some customers, not all"
    assert set(events) == {first, second}, "the night's events carry its load id"
