"""The nightly benchmark on a tiny world: both nights run the real nightly job and are reported."""

from __future__ import annotations

import re

import duckdb

from benchmarks import nightly_run


def test_tiny_world_reports_a_first_and_a_next_night(capsys, tmp_path):
    assert nightly_run.main(["--customers", "150", "--days", "10", "--seed", "3", "--keep", str(tmp_path)]) == 0
    out = capsys.readouterr().out

    assert out.startswith("150 customers, 10 days of history"), out
    for night in ("first night", "next night"):
        match = re.search(
            rf"^ *{night}: job (\d+\.\d) s  command (\d+\.\d) s  peak (\d+\.\d\d) GiB  slowest dbt_models", out, re.M
        )
        assert match, out
        job, command, peak = map(float, match.groups())
        assert 0 < job < command, "the job is timed inside the whole command"
        assert 0 < peak < 8, "peak memory without the sandbox server"
    assert "target" not in out, "no target is set for this size"
    assert "(a history load, served without the vendors' rate limits)" in out, out
    assert not (tmp_path / "data" / "sandbox" / "limits.json").exists(), "the next night meets every limit"

    # the next night really was the world's next day, loaded and built
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as con:
        days = con.execute("SELECT count(DISTINCT CAST(time AS DATE)) FROM raw_mixpanel.events").fetchall()[0][0]
    assert days == 11


def test_targets_are_the_issues():
    assert nightly_run.target_seconds(3000) == 120
    assert nightly_run.target_seconds(1_000_000) == 15 * 60
    assert nightly_run.target_seconds(150) is None
