"""The dbt unit tests (fixed inputs, expected rows: `unit_tests:` in the models' yml files).

The nightly build leaves them out, as dbt advises for production runs: they test the models'
logic, not the night's data. So they run here, against a copy of the small world's warehouse
(dbt reads the input relations' columns from it), every one of them, and every one must pass.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.paths import DBT_PROJECT_DIR

# The shared two nights may be built in this module's setup.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _unit_tests_in_manifest() -> set[str]:
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    return {unique_id for unique_id in manifest.get("unit_tests", {})}


def test_every_dbt_unit_test_passes(tmp_path, small_world_nights):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(small_world_nights[-1].data / "warehouse.duckdb", warehouse)
    cmd = [str(Path(sys.executable).parent / "dbt"), "test", "--select", "test_type:unit"]
    cmd += ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    cmd += ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
    env = {**os.environ, "TESSERA_WAREHOUSE": str(warehouse)}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

    run = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    ran = {r["unique_id"] for r in run if r["status"] == "pass"}
    expected = _unit_tests_in_manifest()
    print(f"{len(ran)} of {len(expected)} unit tests passed")
    # Guards the test itself: the selection found them all, and there are some.
    assert len(expected) >= 20
    assert ran == expected
