"""Erasure and access requests end to end, against a live sandbox and a real warehouse.

One small world (seed 11: one person asks for erasure within 30 days) is loaded with every
loader and built with dbt. Then the night's erasure step (the Dagster asset) runs, dbt builds
again, and every loader runs once more from scratch (fresh dlt state: every record is read
again) so the erased person would come back if the load filter did not hold them out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from activation.privacy.__main__ import main as privacy_cli
from ingestion.common.erasure import identifier_hash
from ingestion.pipelines import load, make_pipeline
from orchestration.paths import DBT_PROJECT_DIR
from tests.conftest import running_sandbox

pytestmark = pytest.mark.slow

SEED, CUSTOMERS, DAYS = 11, 600, 30


@dataclass
class Night:
    data: Path
    world: Path
    erased_email: str
    erased_ids: dict[tuple[str, str], list[str]]
    flagged_email: str  # tombstoned by hand, data left in place: dbt must flag and exclude them
    cli_email: str  # erased through the command line: a guest checkout of theirs was on a shared device
    cli_checkouts: dict[str, int]  # the token of each of their checkouts Shopify holds -> its tracked events
    neighbours_checkout: str  # a checkout of someone else on that shared device
    known_email: str  # a customer with orders, for the access export
    asset_metadata: dict
    received: dict[str, str]  # what each platform's sandbox received, as JSON text
    erase_cli_output: str
    received_after_cli: dict[str, str]  # the same after the erasure by hand

    @property
    def warehouse(self) -> Path:
        return self.data / "warehouse.duckdb"


def _load_everything(warehouse: Path, pipelines_dir: Path) -> None:
    from orchestration.defs.ingestion.assets import SOURCES

    for source in SOURCES:
        load(source.factory(), make_pipeline(source.vendor, warehouse, pipelines_dir))


def _dbt_build(warehouse: Path, now: str, scratch: Path) -> None:
    cmd = [
        str(Path(sys.executable).parent / "dbt"),
        "build",
        "--exclude",
        "resource_type:test",
        "resource_type:unit_test",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(scratch / "target"),
        "--log-path",
        str(scratch / "logs"),
        "--vars",
        json.dumps({"tessera__now": now}),
    ]
    env = {**os.environ, "TESSERA_WAREHOUSE": str(warehouse)}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:]


def _publish(warehouse: Path, data: Path) -> None:
    from orchestration.defs.serving.analysts_copy import publish

    publish(warehouse, data / "analysts.duckdb")


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    return con.execute(sql, params or []).fetchall()[0][0]


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Night:
    from orchestration.defs.privacy.erasure import erased_identifiers
    from orchestration.resources import WarehouseResource
    from sandbox.env import sandbox_env
    from sandbox.world.generate import WorldConfig, generate_world

    root = tmp_path_factory.mktemp("privacy")
    world = generate_world(WorldConfig(seed=SEED, customers=CUSTOMERS, days=DAYS), root / "world")
    data = root / "data"
    data.mkdir()
    warehouse = data / "warehouse.duckdb"
    truth = str(world / "truth")
    with duckdb.connect() as con:
        erased_person, erased_email = con.execute(
            f"SELECT person_id, email FROM read_parquet('{truth}/persons.parquet') WHERE erased"
        ).fetchall()[0]
        rows = con.execute(
            f"SELECT source, id_type, id_value FROM read_parquet('{truth}/identities.parquet') i "
            "WHERE person_id = ? AND (SELECT count(DISTINCT person_id) FROM "
            f"read_parquet('{truth}/identities.parquet') j WHERE j.id_value = i.id_value) = 1",
            [erased_person],
        ).fetchall()
    erased_ids: dict[tuple[str, str], list[str]] = {}
    for source, id_type, value in rows:
        erased_ids.setdefault((source, id_type), []).append(value)

    with running_sandbox(world) as sandbox, pytest.MonkeyPatch.context() as env:
        for key in [k for k in os.environ if k.startswith("SOURCES__")]:
            env.delenv(key)
        for key, value in sandbox_env(sandbox.url, world).items():
            env.setenv(key, value)
        now = os.environ["TESSERA_NOW"]

        _load_everything(warehouse, data / "dlt")
        _dbt_build(warehouse, now, root)
        _publish(warehouse, data)
        # An earlier publication's leftover, as a crash mid-publish would leave it.
        shutil.copy(data / "analysts.duckdb", data / ".analysts.duckdb.partial-1")
        with duckdb.connect(str(warehouse)) as con:
            flagged_email = _one(
                con,
                "SELECT email FROM marts.seg_engaged_never_bought UNION SELECT email FROM marts.seg_vip_customers "
                "UNION SELECT email FROM marts.abandoned_checkouts ORDER BY 1 LIMIT 1",
            )
            # Erased by hand: a shopper who checked out as a guest on a device someone else
            # shopped on too (the world's truth says whose each checkout was). No person field of
            # those events names them, and the device is not theirs alone.
            cli_email, neighbours_checkout = con.execute(
                "WITH owners AS (SELECT checkout_id AS token, person_id "
                f"  FROM read_parquet('{truth}/checkouts.parquet')), "
                "tracked AS (SELECT device_id, checkout_id AS token, count(user_id) AS logins FROM raw_mixpanel.events "
                "  WHERE checkout_id IS NOT NULL GROUP BY ALL), "
                "shoppers AS (SELECT lower(trim(email)) AS email, checkout_token AS token FROM raw_shopify.orders "
                "  UNION SELECT lower(trim(email)), token FROM raw_shopify.abandoned_checkouts) "
                "SELECT s.email, min(other.token) FROM shoppers s JOIN tracked t USING (token) "
                "JOIN owners o USING (token) JOIN tracked other ON other.device_id = t.device_id "
                "JOIN owners other_owner ON other_owner.token = other.token "
                "WHERE t.logins = 0 AND other_owner.person_id <> o.person_id AND s.email <> lower(?) "
                "GROUP BY s.email ORDER BY s.email LIMIT 1",
                [flagged_email],
            ).fetchall()[0]
            # Each checkout Shopify holds under their email, with the storefront's events of it.
            cli_checkouts = dict(
                con.execute(
                    "WITH theirs AS ("
                    "SELECT checkout_token AS token FROM raw_shopify.orders WHERE lower(trim(email)) = ? "
                    "UNION SELECT token FROM raw_shopify.abandoned_checkouts WHERE lower(trim(email)) = ?) "
                    "SELECT token, (SELECT count(*) FROM raw_mixpanel.events e WHERE e.checkout_id = theirs.token) "
                    "FROM theirs WHERE token IS NOT NULL",
                    [cli_email, cli_email],
                ).fetchall()
            )
            # Tessera can only erase what it linked to the person: an anonymous device of theirs
            # that no login or checkout ties to them is someone else as far as the map knows.
            linked = {
                v
                for (v,) in con.execute(
                    "SELECT id_value FROM marts.customer_identifiers WHERE customer_id IN "
                    "(SELECT customer_id FROM marts.customer_identifiers WHERE lower(id_value) = lower(?))",
                    [erased_email],
                ).fetchall()
            }
            erased_ids = {k: [v for v in vs if v in linked] for k, vs in erased_ids.items()}
            assert len(linked) >= 3
            known_email = _one(
                con,
                "SELECT email FROM marts.dim_customers WHERE orders > 1 AND email NOT IN (?, ?) ORDER BY email LIMIT 1",
                [flagged_email, cli_email],
            )
            # The activation ledger and a quarantined record, both carrying the erased person.
            con.execute(
                "CREATE SCHEMA IF NOT EXISTS activation; CREATE TABLE IF NOT EXISTS activation.sync_ledger "
                "(destination VARCHAR, audience VARCHAR, customer_id VARCHAR, email VARCHAR, payload VARCHAR)"
            )
            con.execute(
                "INSERT INTO activation.sync_ledger VALUES ('klaviyo', 'seg_x', 'cus_x', ?, ?), "
                "('klaviyo', 'seg_x', 'cus_y', ?, '{}')",
                [erased_email.upper(), json.dumps({"email": erased_email}), known_email],
            )
            con.execute(
                "CREATE TABLE IF NOT EXISTS raw_hubspot.quarantine "
                "(resource VARCHAR, reason VARCHAR, record VARCHAR, quarantined_at TIMESTAMPTZ)"
            )
            con.execute(
                "INSERT INTO raw_hubspot.quarantine VALUES ('contacts', 'missing primary key', ?, now())",
                [json.dumps({"properties": {"email": erased_email}})],
            )

        # The night's erasure step, as the nightly job runs it.
        result = dg.materialize([erased_identifiers], resources={"warehouse": WarehouseResource(data_dir=str(data))})
        assert result.success
        materialization = result.get_asset_materialization_events()[0].materialization
        metadata = {k: v.value for k, v in materialization.metadata.items()}

        def deletions_received() -> dict[str, str]:
            return {
                vendor: json.dumps(sandbox.control("GET", "received", params={"vendor": vendor, "kind": kind}).json())
                for vendor, kind in (("klaviyo", "data_privacy_deletion_job"), ("mailchimp", "member_delete_permanent"))
            }

        received = deletions_received()

        # A request arriving between two nights: tombstoned only, its data still in place.
        with duckdb.connect(str(warehouse)) as con:
            con.execute(
                "INSERT INTO privacy.erased_identifiers VALUES ('by_hand', 'request', 'email', ?, now())",
                [identifier_hash(flagged_email)],
            )
        # An erasure through the command line, by email and an extra identifier.
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert privacy_cli(["erase", "--warehouse", str(warehouse), "--email", f"  {cli_email.upper()} "]) == 0
        received_after_cli = deletions_received()
        _dbt_build(warehouse, now, root)
        _publish(warehouse, data)

        # Every loader again from scratch: each record is read again and must stay out.
        _load_everything(warehouse, data / "dlt-fresh")
        load(
            __import__("ingestion.privacy", fromlist=["privacy_source"]).privacy_source(),
            make_pipeline("privacy", warehouse, data / "dlt-fresh"),
        )
    return Night(
        data,
        world,
        erased_email,
        erased_ids,
        flagged_email,
        cli_email,
        cli_checkouts,
        neighbours_checkout,
        known_email,
        metadata,
        received,
        out.getvalue(),
        received_after_cli,
    )


def _tables(con: duckdb.DuckDBPyConnection, include_views: bool = True) -> list[tuple[str, str]]:
    kinds = ("BASE TABLE", "VIEW") if include_views else ("BASE TABLE",)
    return con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type IN "
        f"({', '.join('?' * len(kinds))}) AND table_schema NOT IN ('information_schema', 'pg_catalog') "
        "AND table_catalog = current_database()",
        list(kinds),
    ).fetchall()


def _tables_mentioning(database: Path, text: str) -> list[str]:
    """Every table or view with a row whose text contains `text` (case-insensitive)."""
    hits = []
    with duckdb.connect(str(database), read_only=True) as con:
        for schema, table in _tables(con):
            if schema == "privacy":
                continue
            n = _one(
                con,
                f'SELECT count(*) FROM "{schema}"."{table}" AS t WHERE contains(lower(CAST(t AS VARCHAR)), ?)',
                [text.lower()],
            )
            if n:
                hits.append(f"{schema}.{table}")
    return hits


def test_the_night_processed_the_worlds_erasure_request(night):
    assert night.asset_metadata["requests_processed"] == 1
    per_schema = night.asset_metadata["rows_deleted_per_schema"]
    for schema in ("raw_hubspot", "raw_klaviyo", "raw_mailchimp", "marts", "activation"):
        assert per_schema.get(schema, 0) > 0, (schema, per_schema)
    with duckdb.connect(str(night.warehouse), read_only=True) as con:
        assert (
            _one(
                con,
                "SELECT count(*) FROM privacy.erasure_log WHERE email_hash = ?",
                [identifier_hash(night.erased_email)],
            )
            == 1
        )


def test_the_email_platforms_were_asked_to_delete_them(night):
    outcomes = next(iter(night.asset_metadata["destinations"].values()))
    assert outcomes["klaviyo"].get("ok", 0) >= 1, outcomes
    assert outcomes["mailchimp"].get("ok", 0) >= 1, outcomes
    assert night.asset_metadata["destinations_unavailable"] == {}
    for vendor in ("klaviyo", "mailchimp"):
        assert night.erased_email.lower() in night.received[vendor].lower(), vendor


def test_the_tombstone_keeps_hashes_not_personal_data(night):
    with duckdb.connect(str(night.warehouse), read_only=True) as con:
        rows = con.execute("SELECT source, id_type, id_hash FROM privacy.erased_identifiers").fetchall()
        log = con.execute("SELECT * FROM privacy.erasure_log").fetchall()
    hashes = {h for _, _, h in rows}
    assert identifier_hash(night.erased_email) in hashes
    for (source, id_type), values in night.erased_ids.items():
        assert all(identifier_hash(v) in hashes for v in values), (source, id_type)
    text = json.dumps([rows, log], default=str).lower()
    assert night.erased_email.lower() not in text
    assert all(len(h) == 64 for h in hashes)


def test_the_erased_person_is_in_no_table_of_the_warehouse(night):
    assert _tables_mentioning(night.warehouse, night.erased_email) == []
    assert _tables_mentioning(night.warehouse, night.cli_email) == []
    # Nor in the file's bytes: freed blocks that still held the deleted rows were rewritten.
    content = night.warehouse.read_bytes().lower()
    assert night.erased_email.lower().encode() not in content
    assert night.cli_email.lower().encode() not in content


def test_the_erased_persons_other_identifiers_are_gone_too(night):
    where = {
        ("hubspot", "contact_id"): [("raw_hubspot.contacts", "id")],
        ("klaviyo", "profile_id"): [("raw_klaviyo.profiles", "id"), ("raw_klaviyo.events", "profile_id")],
        ("mailchimp", "unique_email_id"): [("raw_mailchimp.members", "unique_email_id")],
        ("mixpanel", "device_id"): [
            ("raw_mixpanel.events", "device_id"),
            ("intermediate.int_device_sessions", "device_id"),
        ],
        ("shopify", "customer_id"): [("raw_shopify.customers", "id"), ("raw_shopify.orders", "customer__id")],
    }
    checked = 0
    with duckdb.connect(str(night.warehouse), read_only=True) as con:
        values = [v for vs in night.erased_ids.values() for v in vs]
        assert (
            _one(
                con,
                f"SELECT count(*) FROM marts.customer_identifiers WHERE id_value IN ({', '.join('?' * len(values))})",
                values,
            )
            == 0
        )
        for key, places in where.items():
            for value in night.erased_ids.get(key, []):
                for table, column in places:
                    assert _one(con, f"SELECT count(*) FROM {table} WHERE CAST({column} AS VARCHAR) = ?", [value]) == 0
                    checked += 1
    assert checked >= 3


def test_their_checkouts_are_gone_from_every_table_whatever_device_they_used(night):
    # A checkout is its shopper's: its events go too, on a device shared with someone else.
    # Left there, the next build would credit their cart to the device's other shopper.
    assert sum(night.cli_checkouts.values()) > 0
    for token in night.cli_checkouts:
        assert _tables_mentioning(night.warehouse, token) == [], token
    # The other shopper's checkout on that device is theirs, and stays.
    with duckdb.connect(str(night.warehouse), read_only=True) as con:
        for table in ("raw_mixpanel.events", "marts.fct_checkouts"):
            column = "checkout_id" if table.startswith("raw") else "checkout_token"
            assert _one(con, f"SELECT count(*) FROM {table} WHERE {column} = ?", [night.neighbours_checkout]) > 0


def test_the_analysts_copy_was_republished_without_them(night):
    assert _tables_mentioning(night.data / "analysts.duckdb", night.erased_email) == []
    assert not list(night.data.glob(".analysts.duckdb.partial-*"))


def test_no_load_package_file_contains_their_email(night):
    email = night.erased_email.lower()
    files = [p for p in night.data.glob("dlt*/**/*") if p.is_file()]
    assert files
    with duckdb.connect() as con:
        for path in files:
            assert email.encode() not in path.read_bytes().lower(), path
            if path.suffix == ".parquet":
                n = _one(
                    con,
                    f"SELECT count(*) FROM read_parquet('{path}') AS t WHERE contains(lower(CAST(t AS VARCHAR)), ?)",
                    [email],
                )
                assert n == 0, path


def test_a_fresh_load_of_every_source_does_not_bring_them_back(night):
    with duckdb.connect(str(night.warehouse), read_only=True) as con:
        # The fresh load did load: the other people came back in full.
        assert _one(con, "SELECT count(*) FROM raw_hubspot.contacts") > 100
        assert _one(con, "SELECT count(*) FROM raw_privacy.erasure_requests") == 0
    for schema_prefix in ("raw_",):
        hits = [t for t in _tables_mentioning(night.warehouse, night.erased_email) if t.startswith(schema_prefix)]
        assert hits == []


def test_an_erased_person_not_yet_deleted_is_flagged_and_in_no_audience(night):
    with duckdb.connect(str(night.warehouse), read_only=True) as con:
        assert _one(con, "SELECT bool_and(is_erased) FROM marts.dim_customers WHERE email = ?", [night.flagged_email])
        assert (
            _one(con, "SELECT count(*) FROM marts.dim_customers WHERE is_erased AND email <> ?", [night.flagged_email])
            == 0
        )
        segments = [t for s, t in _tables(con, include_views=False) if s == "marts" and t.startswith("seg_")]
        assert segments
        for table in [*segments, "abandoned_checkouts"]:
            assert _one(con, f"SELECT count(*) FROM marts.{table} WHERE email = ?", [night.flagged_email]) == 0, table


def test_the_worlds_erased_person_is_in_no_segment_and_not_abandoned(night):
    with duckdb.connect(str(night.warehouse), read_only=True) as con:
        for table in [
            "seg_vip_customers",
            "seg_engaged_never_bought",
            "seg_at_risk_subscribers",
            "abandoned_checkouts",
        ]:
            assert (
                _one(con, f"SELECT count(*) FROM marts.{table} WHERE lower(email) = ?", [night.erased_email.lower()])
                == 0
            )


def test_the_erase_command_reports_what_it_deleted(night):
    out = night.erase_cli_output
    assert re.search(r"request cli_\w+: 1 customer\(s\), [1-9]\d* identifier\(s\) tombstoned", out), out
    assert re.search(r"deleted\s+[1-9][\d,]* rows from raw_shopify\.orders\n", out), out
    for platform in ("klaviyo", "mailchimp"):
        assert f"{platform}: {{'ok': " in out, out


def test_access_export_holds_a_known_persons_orders_and_identifiers(night, tmp_path):
    out = tmp_path / "person.json"
    assert (
        privacy_cli(["access", "--warehouse", str(night.warehouse), "--email", night.known_email, "--out", str(out)])
        == 0
    )
    export = json.loads(out.read_text())
    assert export["about"] and export["generated_at"]
    assert export["request"]["email"] == night.known_email
    tables = export["tables"]
    assert len(tables["raw_shopify.orders"]) >= 2
    assert tables["raw_shopify.orders__line_items"]
    assert tables["marts.dim_customers"][0]["email"] == night.known_email
    assert {"source", "id_type", "id_value"} <= set(tables["marts.customer_identifiers"][0])
    assert any(i["id_type"] == "email" for i in export["identifiers"])
    assert export["row_counts"]["raw_shopify.orders"] == len(tables["raw_shopify.orders"])


def test_access_export_of_an_erased_person_holds_nothing(night, tmp_path):
    out = tmp_path / "erased.json"
    assert (
        privacy_cli(["access", "--warehouse", str(night.warehouse), "--email", night.erased_email, "--out", str(out)])
        == 0
    )
    assert json.loads(out.read_text())["tables"] == {}


def test_an_erasure_by_hand_asks_every_configured_platform_as_the_nightly_does(night):
    for vendor in ("klaviyo", "mailchimp"):
        assert night.cli_email.lower() not in night.received[vendor].lower(), vendor
        assert night.cli_email.lower() in night.received_after_cli[vendor].lower(), vendor


def test_erase_by_hand_with_an_unconfigured_platform_erases_nothing_and_says_what_to_set(tmp_path, monkeypatch, capsys):
    for name in ("ACTIVATION__KLAVIYO__API_KEY", "SOURCES__KLAVIYO__API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no secrets file to find a key in
    warehouse = tmp_path / "warehouse.duckdb"
    args = ["erase", "--warehouse", str(warehouse), "--email", "jane@example.com", "--destinations", "klaviyo"]
    assert privacy_cli(args) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: klaviyo: set ACTIVATION__KLAVIYO__API_KEY") and "nothing was erased" in error
    assert not warehouse.exists()
