"""The `only_emailable_customers` data test catches a segment member who may not be emailed,
for each reason the `email_audience()` rule names.

The segments select from email_audience(), so on real data the test never fails; here members
of a built segment are made ineligible one reason each (in dim_customers, which the test reads),
and the test must report each of them and nobody else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from orchestration.paths import DBT_PROJECT_DIR

# The shared two nights may be built in this module's setup.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SEGMENTS = sorted(p.stem for p in (DBT_PROJECT_DIR / "models" / "marts" / "segments").glob("seg_*.sql"))
# One ineligible member per reason: the dim_customers change that makes them so.
REASONS = {
    "unknown identity": "identity_status = 'anonymous'",
    "no email": "email = NULL",
    "not subscribed": "email_consent_status = 'unsubscribed'",
    "bounced": "is_email_bounced = true",
    "complained": "has_marked_email_as_spam = true",
    "erasure requested": "is_erased = true",
}


def test_the_consent_test_reports_every_ineligible_member(tmp_path, small_world_nights):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(small_world_nights[-1].data / "warehouse.duckdb", warehouse)
    with duckdb.connect(str(warehouse)) as con:
        # The largest segment, so there are members to spare (every segment carries the test).
        sizes = {name: con.execute(f"SELECT count(*) FROM marts.{name}").fetchall()[0][0] for name in SEGMENTS}
        segment = max(sizes, key=sizes.get)
        members = [r[0] for r in con.execute(f"SELECT customer_id FROM marts.{segment} ORDER BY 1").fetchall()]
        assert len(members) > len(REASONS), "the segment has members to spare"
        for customer_id, change in zip(members, REASONS.values(), strict=False):
            con.execute(f"UPDATE marts.dim_customers SET {change} WHERE customer_id = ?", [customer_id])

    cmd = [str(Path(sys.executable).parent / "dbt"), "test"]
    cmd += ["--select", f"{segment},test_name:only_emailable_customers", "--store-failures"]
    cmd += ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    cmd += ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
    env = {**os.environ, "TESSERA_WAREHOUSE": str(warehouse)}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout[-3000:]

    (run,) = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    assert run["status"] == "fail"
    assert run["failures"] == len(REASONS)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        # --store-failures keeps the failing rows in the table dbt names.
        reported = sorted(r[0] for r in con.execute(f"SELECT customer_id FROM {run['relation_name']}").fetchall())
    assert reported == sorted(members[: len(REASONS)])
