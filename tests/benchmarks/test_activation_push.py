"""The Klaviyo push benchmark at a small size: it runs, prints its report, and no limit is exceeded."""

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
    assert _number(r"^rate-limit violations \(sandbox counters\): (\d+)$", out) == 0
    assert re.search(r"event_bulk_create_job 2, list_create 1, profile_bulk_import_job 2;", out), out
    assert "subscription" not in out
