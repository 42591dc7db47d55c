"""The Klaviyo push benchmark at a small size: it runs, prints its report, and no limit is exceeded;
its verdict judges both parts of the target."""

from __future__ import annotations

import re

from benchmarks import activation_push


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"no line matching {pattern!r} in:\n{text}"
    return float(match.group(1).replace(",", ""))


def test_small_push_reports_its_floor_and_no_rate_limit_violations(capsys, tmp_path):
    assert activation_push.main(["--profiles", "2000", "--customers", "100", "--keep", str(tmp_path / "world")]) == 0
    out = capsys.readouterr().out

    assert _number(r"^pushed ([\d,]+) changed profiles", out) == 2000
    assert _number(r": ([\d,]+) ok, 0 rejected$", out) == 2000
    assert _number(r"list members: ([\d,]+)$", out) == 2000
    # read back from the sandbox: every profile with its properties, and its one event
    assert _number(r"^delivered \(read back from the sandbox\): ([\d,]+) profiles with every pushed", out) == 2000
    assert _number(r"property, ([\d,]+) events;", out) == 2000
    # 2 import jobs (1,000 then 1,000) and 2 event requests of 1,000 events each
    assert re.search(r"^  bulk_import_profiles\s+2 requests, tier M \(10/s, 150/min\)", out, re.MULTILINE), out
    assert re.search(r"^  bulk_create_events\s+2 requests, tier M \(10/s, 150/min\)", out, re.MULTILINE), out
    assert _number(r"^minimum the limits allow: (\d+\.\d+) s$", out) == 0.0
    assert re.search(r"^ratio: .* -> target 1\.25x: (met|MISSED|n/a)", out, re.MULTILINE), out
    assert _number(r"^rate-limit violations \(sandbox counters\): (\d+) -> target 0: met$", out) == 0
    # every endpoint fits in its first window: no floor, so the ratio cannot be judged
    assert re.search(r"^target \(.*zero rate-limit violations\): n/a \(no floor", out, re.MULTILINE), out
    assert re.search(r"event_bulk_create_job 2, list_create 1, profile_bulk_import_job 2;", out), out
    assert "subscription" not in out


def _report(elapsed: float, floor: float, violations: int) -> dict:
    return {"elapsed": elapsed, "floor": floor, "violations": violations}


def test_the_target_needs_the_ratio_and_zero_violations():
    assert activation_push.verdict(_report(elapsed=12.0, floor=10.0, violations=0)) == "met"
    # within the ratio, but the sandbox counted violations: the target is missed, and says why
    assert activation_push.verdict(_report(elapsed=10.0, floor=10.0, violations=3)) == (
        "MISSED (3 rate-limit violations)"
    )
    assert activation_push.verdict(_report(elapsed=13.0, floor=10.0, violations=0)) == "MISSED (ratio 1.30x over 1.25x)"
    assert activation_push.verdict(_report(elapsed=13.0, floor=10.0, violations=1_200)) == (
        "MISSED (ratio 1.30x over 1.25x; 1,200 rate-limit violations)"
    )
    # without a floor only the violations can be judged: they still miss it
    assert activation_push.verdict(_report(elapsed=1.0, floor=0.0, violations=0)).startswith("n/a")
    assert activation_push.verdict(_report(elapsed=1.0, floor=0.0, violations=2)) == "MISSED (2 rate-limit violations)"


def test_the_report_prints_each_part_and_the_verdict(capsys):
    r = {
        **_report(elapsed=10.0, floor=10.0, violations=3),
        "profiles": 10,
        "ok": 10,
        "rejected": 0,
        "requests": 2,
        "retries": 0,
        "throttled": 3,
        "floor_lines": [],
        "server_cpu": 1.0,
        "waited": 0.0,
        "load": 0.0,
        "profiles_ok": 10,
        "events_ok": 10,
        "settled": 10.0,
        "writes": {},
        "listed": 10,
    }
    activation_push.report(r)
    out = capsys.readouterr().out

    assert re.search(r"^ratio: 1\.00x -> target 1\.25x: met$", out, re.MULTILINE), out
    assert re.search(r"^rate-limit violations \(sandbox counters\): 3 -> target 0: MISSED$", out, re.MULTILINE), out
    assert re.search(r"^target \(.*\): MISSED \(3 rate-limit violations\)$", out, re.MULTILINE), out
    assert not re.search(r"^target .*: met", out, re.MULTILINE), out
