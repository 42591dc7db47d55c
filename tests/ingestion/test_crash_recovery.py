"""A load killed midway, then run again, ends with the same tables as an uninterrupted load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from ingestion.pipelines import load, make_pipeline
from ingestion.shopify import shopify_source
from orchestration.paths import PROJECT_ROOT

LOAD_SCRIPT = """
import sys
from pathlib import Path
from ingestion.pipelines import load, make_pipeline
from ingestion.shopify import shopify_source
root = Path(sys.argv[1])
load(shopify_source(page_size=25), make_pipeline("shopify", root / "warehouse.duckdb", root / "dlt"))
"""
TABLES = ("customers", "orders", "orders__line_items", "products", "abandoned_checkouts")


def _snapshot(warehouse) -> dict[str, list[tuple]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        out = {}
        for table in TABLES:
            cols = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw_shopify' "
                    "AND table_name = ? AND column_name NOT LIKE '\\_dlt%' ESCAPE '\\' ORDER BY column_name",
                    [table],
                ).fetchall()
            ]
            select = ", ".join(f'"{c}"' for c in cols)
            out[table] = con.execute(f"SELECT {select} FROM raw_shopify.{table} ORDER BY ALL").fetchall()
        return out


@pytest.mark.slow
def test_killed_load_then_rerun_equals_uninterrupted_load(sandbox, tmp_path):
    creds = json.loads((sandbox.world / "world.json").read_text())["credentials"]["shopify"]
    env = {
        **os.environ,
        "SOURCES__SHOPIFY__BASE_URL": sandbox.vendor_url("shopify"),
        "SOURCES__SHOPIFY__ACCESS_TOKEN": creds["access_token"],
    }

    clean = tmp_path / "clean"
    load(
        shopify_source(base_url=sandbox.vendor_url("shopify"), access_token=creds["access_token"], page_size=25),
        make_pipeline("shopify", clean / "warehouse.duckdb", clean / "dlt"),
    )

    # Slow answers stretch the load so the kill lands in the middle of it.
    sandbox.set_faults(rate_slow=1.0, slow_seconds=0.05)
    crashed = tmp_path / "crashed"
    proc = subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT, str(crashed)], cwd=PROJECT_ROOT, env=env)
    time.sleep(2.0)
    assert proc.poll() is None, "the load finished before it could be killed; slow the sandbox further"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sandbox.reset()

    rerun = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(crashed)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _snapshot(crashed / "warehouse.duckdb") == _snapshot(clean / "warehouse.duckdb")
