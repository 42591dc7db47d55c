"""The README's demo, end to end: a fresh world, the sandbox server, the nightly job, the warehouse."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import duckdb
import pytest

from orchestration.paths import PROJECT_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_demo_goes_from_nothing_to_a_loaded_warehouse(tmp_path):
    env = {**os.environ, "TESSERA_DATA_DIR": str(tmp_path / "data")}
    env.pop("SOURCES__HUBSPOT__ACCESS_TOKEN", None)
    cmd = [
        sys.executable,
        "-m",
        "orchestration.demo",
        "--customers",
        "300",
        "--days",
        "20",
        "--port",
        str(_free_port()),
    ]
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[4/4] Done" in done.stdout
    assert "marts.crm_lifecycle_stages" in done.stdout
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as con:
        contacts = con.execute("SELECT count(*) FROM raw_hubspot.contacts").fetchall()[0][0]
        staged = con.execute("SELECT count(*) FROM staging.stg_hubspot__contacts").fetchall()[0][0]
        in_marts = con.execute("SELECT sum(contacts) FROM marts.crm_lifecycle_stages").fetchall()[0][0]
    assert contacts > 0 and contacts == staged == in_marts

    # A second demo reuses the world and merges: the warehouse holds no duplicates.
    again = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Reusing the sandbox world" in again.stdout
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw_hubspot.contacts").fetchall()[0][0] == contacts
