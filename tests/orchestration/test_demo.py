"""The README's demo, end to end: a fresh world, the sandbox server, the nightly job, the warehouse."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from orchestration.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DemoRun:
    data: Path
    cmd: list[str]
    env: dict[str, str]
    result: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoRun:
    data = tmp_path_factory.mktemp("demo") / "data"
    env = {**os.environ, "TESSERA_DATA_DIR": str(data)}
    for key in list(env):
        if key.startswith("SOURCES__"):
            env.pop(key)  # the demo must find its own way to the sandbox
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
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return DemoRun(data, cmd, env, result)


def _count(warehouse: Path, table: str) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def test_demo_goes_from_nothing_to_a_loaded_warehouse(demo):
    assert "[4/4] Done" in demo.result.stdout
    warehouse = demo.data / "warehouse.duckdb"
    for table in (
        "raw_hubspot.contacts",
        "raw_shopify.orders",
        "raw_klaviyo.profiles",
        "raw_mailchimp.members",
        "raw_instagram.comments",
        "marts.crm_lifecycle_stages",
    ):
        assert table in demo.result.stdout
        assert _count(warehouse, table) > 0, table
    contacts = _count(warehouse, "raw_hubspot.contacts")
    assert contacts == _count(warehouse, "staging.stg_hubspot__contacts")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT sum(contacts) FROM marts.crm_lifecycle_stages").fetchall()[0][0] == contacts


def test_the_analysts_copy_holds_every_mart(demo):
    warehouse, copy = demo.data / "warehouse.duckdb", demo.data / "analysts.duckdb"
    query = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts' ORDER BY 1"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        marts = [t for (t,) in con.execute(query).fetchall()]
    with duckdb.connect(str(copy), read_only=True) as con:
        assert [t for (t,) in con.execute(query).fetchall()] == marts
        assert con.execute("SELECT count(*) FROM marts.dim_customers").fetchall()[0][0] > 0
    assert "dim_customers" in marts and "customer_identifiers" in marts


def test_dbt_docs_describe_every_mart_and_column(demo, tmp_path):
    env = {**demo.env, "TESSERA_WAREHOUSE": str(demo.data / "warehouse.duckdb")}
    dbt = str(Path(sys.executable).parent / "dbt")
    cmd = [dbt, "docs", "generate", "--profiles-dir", ".", "--target-path", str(tmp_path)]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT / "dbt_project", env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    undescribed = []
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] != "model" or node["schema"] != "marts":
            continue
        if not node["description"].strip():
            undescribed.append(node["name"])
        for column in catalog["nodes"][unique_id]["columns"]:
            if not node["columns"].get(column.lower(), {}).get("description", "").strip():
                undescribed.append(f"{node['name']}.{column}")
    assert undescribed == []


def test_no_secret_reaches_the_output_the_warehouse_dlt_state_or_dagster(demo):
    creds = json.loads((demo.data / "sandbox" / "world.json").read_text())["credentials"]
    secrets = [c[k] for c in creds.values() for k in ("access_token", "api_key", "service_account_secret") if k in c]
    assert len(secrets) >= 6
    for secret in secrets:
        assert secret not in demo.result.stdout and secret not in demo.result.stderr
    for folder in (demo.data / "dlt", demo.data / "dagster_home"):
        for path in folder.rglob("*"):
            if path.is_file():
                blob = path.read_bytes()
                for secret in secrets:
                    assert secret.encode() not in blob, f"a credential is stored in {path.relative_to(demo.data)}"
    with duckdb.connect(str(demo.data / "warehouse.duckdb"), read_only=True) as con:
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR' AND table_schema NOT IN ('information_schema', 'pg_catalog')"
        ).fetchall()
        for schema, table, column in columns:
            for secret in secrets:
                hits = con.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}" WHERE contains("{column}", ?)', [secret]
                ).fetchall()[0][0]
                assert hits == 0, f"a credential is stored in {schema}.{table}.{column}"


def test_a_second_demo_reuses_the_world_and_duplicates_nothing(demo):
    warehouse = demo.data / "warehouse.duckdb"
    before = {t: _count(warehouse, t) for t in ("raw_hubspot.contacts", "raw_shopify.orders", "raw_klaviyo.events")}
    again = subprocess.run(demo.cmd, cwd=PROJECT_ROOT, env=demo.env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Reusing the sandbox world" in again.stdout
    assert {t: _count(warehouse, t) for t in before} == before
