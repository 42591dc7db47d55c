"""The nightly benchmark on a tiny world: both nights run the real nightly job and are reported."""

from __future__ import annotations

import re

import duckdb

from benchmarks import nightly_run
from benchmarks.measure import process_label


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
    # the peak is broken down by process, and by the step that ran when each step's peak was sampled
    assert re.search(r"^ *at the job's peak: .*python -m orchestration\.demo \d+\.\d\d GiB", out, re.M), out
    assert len(re.findall(r"^ *\d+\.\d\d GiB during [^:]+: .*python -m orchestration\.demo", out, re.M)) == 2 * 6, out
    assert re.search(r"GiB during dbt_models: .*dbt build \d+\.\d\d GiB", out), "dbt's own process is counted"
    assert (
        len(re.findall(r"^ *peak of the whole command \(the demo's closing identity scores included\): \d", out, re.M))
        == 2
    )
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


def test_processes_are_named_by_what_they_run():
    assert (
        process_label(["/x/.venv/bin/python", "-m", "orchestration.demo", "--seed", "1"])
        == "python -m orchestration.demo"
    )
    assert process_label(["/x/.venv/bin/python", "/x/.venv/bin/dbt", "build", "--select", "m"]) == "dbt build"
    assert process_label(["duckdb"]) == "duckdb"
