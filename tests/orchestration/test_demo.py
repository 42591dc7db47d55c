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


def test_the_demo_warns_only_about_what_needs_a_look(demo):
    """No noise a user must learn to ignore: dbt's tests of the raw tables are observations by
    design, not 36 warnings a night, and nothing reports leaked objects at exit."""
    output = demo.result.stdout + demo.result.stderr
    assert "instead of an `AssetCheckResult` for dbt test `source_" not in output
    # DuckDB's bindings report objects still alive at exit (the sandbox server's, here).
    assert "nanobind: leaked" not in output


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


ABANDONED = "abandoned_checkouts"


def _ledger_members(warehouse: Path, destination: str, audience: str) -> set[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT lower(email) FROM activation.sync_ledger "
            "WHERE destination = ? AND audience = ? AND state = 'member'",
            [destination, audience],
        ).fetchall()
    return {r[0] for r in rows}


def _expected_abandoned(warehouse: Path) -> dict[str, dict]:
    """The abandonment mart minus its deterministic holdout: email -> row."""
    from activation.sync.holdouts import is_held_out

    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            f"SELECT customer_id, lower(email), checkout_token, cart_value FROM marts.{ABANDONED}"
        ).fetchall()
    return {
        email: {"checkout_token": token, "cart_value": value}
        for customer_id, email, token, value in rows
        if not is_held_out(ABANDONED, customer_id, 0.1)
    }


def _platforms(world: Path, url: str) -> dict[str, str]:
    from sandbox.env import sandbox_env

    return sandbox_env(url, world)


def test_the_pushes_hold_exactly_the_abandoned_audience_minus_holdouts(demo):
    from tests.activation.vendor_reads import klaviyo_list_members, mailchimp_tagged
    from tests.conftest import running_sandbox

    warehouse, world = demo.data / "warehouse.duckdb", demo.data / "sandbox"
    expected = _expected_abandoned(warehouse)
    assert len(expected) >= 3, "the demo world should leave some carts behind"
    with running_sandbox(world) as sandbox:
        env = _platforms(world, sandbox.url)
        klaviyo = klaviyo_list_members(
            env["SOURCES__KLAVIYO__BASE_URL"], env["SOURCES__KLAVIYO__API_KEY"], "Abandoned checkout (24h)"
        )
        tagged = mailchimp_tagged(
            env["SOURCES__MAILCHIMP__BASE_URL"],
            env["SOURCES__MAILCHIMP__API_KEY"],
            env["ACTIVATION__MAILCHIMP__LIST_ID"],
            "abandoned_checkout_24h",
        )
    assert set(klaviyo) == set(expected)
    for email, row in expected.items():
        assert klaviyo[email]["checkout_token"] == row["checkout_token"]
        assert klaviyo[email]["cart_value"] == pytest.approx(row["cart_value"])
        assert isinstance(klaviyo[email]["line_items"], list) and klaviyo[email]["line_items"]
    # Mailchimp tags only its own subscribed members; the rest are skipped, never created.
    with duckdb.connect(str(warehouse), read_only=True) as con:
        skipped = {
            r[0]
            for r in con.execute(
                "SELECT lower(email) FROM activation.sync_ledger "
                "WHERE destination = 'mailchimp' AND audience = ? AND state = 'skipped'",
                [ABANDONED],
            ).fetchall()
        }
        subscribed_in_mailchimp = {
            r[0]
            for r in con.execute(
                "SELECT lower(trim(email_address)) FROM raw_mailchimp.members WHERE status = 'subscribed'"
            ).fetchall()
        }
    assert set(tagged) | skipped == set(expected) and not set(tagged) & skipped
    assert set(tagged) <= subscribed_in_mailchimp and not skipped & subscribed_in_mailchimp
    assert _ledger_members(warehouse, "klaviyo", ABANDONED) == set(expected)


def test_nobody_delivered_may_not_be_emailed_and_nobody_is_subscribed(demo):
    """Against the world's truth: every address in any pushed audience belongs to a person who
    is subscribed, never bounced or complained, and asked for no erasure."""
    from tests.conftest import running_sandbox

    warehouse, world = demo.data / "warehouse.duckdb", demo.data / "sandbox"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        delivered = con.execute(
            "SELECT DISTINCT lower(email) FROM activation.sync_ledger WHERE state = 'member'"
        ).fetchall()
        con.execute("CREATE TEMP TABLE delivered AS SELECT unnest(?::varchar[]) AS email", [[r[0] for r in delivered]])
        refused = con.execute(
            f"""
            SELECT DISTINCT d.email, p.email_consent_status, p.is_bounced, p.is_spam_complaint, p.erased
            FROM delivered d
            JOIN '{world}/truth/identities.parquet' i ON i.id_type = 'email' AND lower(trim(i.id_value)) = d.email
            JOIN '{world}/truth/persons.parquet' p ON p.person_id = i.person_id
            WHERE p.email_consent_status <> 'subscribed' OR p.is_bounced OR p.is_spam_complaint OR p.erased
            """
        ).fetchall()
    assert len(delivered) > 10
    assert refused == []
    with running_sandbox(world) as sandbox:
        writes = sandbox.control("GET", "counters").json()["writes"]
        received = sandbox.control("GET", "received", params={"vendor": "mailchimp", "limit": 100000}).json()
    assert "subscription_bulk_create_job" not in writes.get("klaviyo", {})
    for item in received["items"]:
        body = json.dumps(item["payload"])
        assert '"status_if_new"' not in body and '"status": "subscribed"' not in body, item["kind"]


def test_a_second_push_over_unchanged_data_makes_no_write_call(demo):
    from tests.conftest import running_sandbox

    world = demo.data / "sandbox"
    with running_sandbox(world) as sandbox:
        sandbox.control("POST", "counters/reset")
        env = {**demo.env, **_platforms(world, sandbox.url)}
        push = subprocess.run(
            [sys.executable, "-m", "activation", "sync"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
        )
        assert push.returncode == 0, push.stdout[-2000:] + push.stderr[-2000:]
        writes = sandbox.control("GET", "counters").json()["writes"]
    assert all(not kinds for kinds in writes.values()), writes
    assert "abandoned_checkouts" in push.stdout


def test_a_second_demo_reuses_the_world_and_duplicates_nothing(demo):
    warehouse = demo.data / "warehouse.duckdb"
    # Klaviyo events the world made, without the "Abandoned Checkout" events Tessera's own push
    # created, which the second night rightly loads back.
    world_events = (
        "(SELECT * FROM raw_klaviyo.events WHERE metric_id NOT IN "
        "(SELECT id FROM raw_klaviyo.metrics WHERE name = 'Abandoned Checkout'))"
    )
    before = {t: _count(warehouse, t) for t in ("raw_hubspot.contacts", "raw_shopify.orders", world_events)}
    again = subprocess.run(demo.cmd, cwd=PROJECT_ROOT, env=demo.env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Reusing the sandbox world" in again.stdout
    assert {t: _count(warehouse, t) for t in before} == before
    assert _count(warehouse, "(SELECT DISTINCT id FROM raw_klaviyo.events)") == _count(warehouse, "raw_klaviyo.events")


def test_advancing_past_the_worlds_horizon_says_so_without_a_traceback(private_sandbox):
    from orchestration.demo import _advance

    with pytest.raises(SystemExit, match=r"--advance-days 10000: cannot advance .* past the world's horizon"):
        _advance(private_sandbox.url, 10_000)
