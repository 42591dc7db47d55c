"""The HubSpot dlt source against the sandbox: complete, incremental, no duplicates, clear failures."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import dlt
import duckdb
import pytest

from ingestion.common.http import RetryPolicy
from ingestion.hubspot import hubspot_source
from ingestion.hubspot.helpers import HubSpotApi
from ingestion.hubspot.settings import COMPANIES, CONTACTS, LOOKBACK_SECONDS, START_DATE
from ingestion.pipelines import load, make_pipeline

FAST = RetryPolicy(max_attempts=6, backoff_base=0.01, backoff_max=0.1, timeout=30)
# object table -> (store table, store columns whose latest value at the clock is the last modification)
STORES = {
    "contacts": ("hubspot_contacts", ("updated_at", "optout_at")),
    "companies": ("hubspot_companies", ("updated_at",)),
    "deals": ("hubspot_deals", ("updated_at",)),
}


def _token(world) -> str:
    return json.loads((world / "world.json").read_text())["credentials"]["hubspot"]["access_token"]


def _visible(world, table: str) -> int:
    clock = json.loads((world / "world.json").read_text())["clock"]
    con = duckdb.connect()
    return con.execute(
        f"SELECT count(*) FROM read_parquet('{world}/store/{table}.parquet') WHERE created_at <= ?::TIMESTAMPTZ",
        [clock],
    ).fetchall()[0][0]


def _modified_since(world: Path, table: str, since: datetime) -> int:
    """Visible records whose last modification (as HubSpot reports it, in ms) is at or after `since`."""
    store, changes = STORES[table]
    clock = json.loads((world / "world.json").read_text())["clock"]
    latest = ", ".join(f"CASE WHEN {c} <= $clock THEN {c} END" for c in changes)
    con = duckdb.connect()
    return con.execute(
        f"SELECT count(*) FROM read_parquet('{world}/store/{store}.parquet') WHERE created_at <= $clock"
        f" AND epoch_us(greatest(created_at, {latest})) // 1000 >= $since_ms",
        {"clock": clock, "since_ms": int(since.timestamp() * 1000)},
    ).fetchall()[0][0]


def _source(sandbox, **kwargs):
    kwargs.setdefault("retry_policy", FAST)
    return hubspot_source(base_url=sandbox.vendor_url("hubspot"), access_token=_token(sandbox.world), **kwargs)


def _pipeline(tmp_path) -> dlt.Pipeline:
    return make_pipeline("hubspot", tmp_path / "warehouse.duckdb", tmp_path / "dlt")


def _counts(tmp_path, table: str) -> tuple[int, int]:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(f"SELECT count(*), count(DISTINCT id) FROM raw_hubspot.{table}").fetchall()[0]


def _assert_complete(tmp_path, world) -> None:
    for table, (store, _) in STORES.items():
        rows, distinct = _counts(tmp_path, table)
        assert rows == distinct == _visible(world, store), table


def _cursors(pipeline: dlt.Pipeline) -> dict[str, datetime]:
    resources = pipeline.state["sources"]["hubspot"]["resources"]
    return {name: resources[name]["incremental"]["updatedAt"]["last_value"] for name in STORES}


def _requests(sandbox) -> int:
    return sandbox.control("GET", "counters").json()["requests"].get("hubspot", 0)


def _extracted(pipeline: dlt.Pipeline) -> dict[str, int]:
    return pipeline.last_trace.last_normalize_info.row_counts


def test_loads_every_contact_and_company_once(sandbox, tmp_path):
    pipeline = make_pipeline("hubspot", tmp_path / "warehouse.duckdb", tmp_path / "dlt")
    source = hubspot_source(base_url=sandbox.vendor_url("hubspot"), access_token=_token(sandbox.world))
    load(source, pipeline)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        for table, store in (("contacts", "hubspot_contacts"), ("companies", "hubspot_companies")):
            rows, distinct = con.execute(f"SELECT count(*), count(DISTINCT id) FROM raw_hubspot.{table}").fetchall()[0]
            assert rows == distinct == _visible(sandbox.world, store), table
    # a second run merges on the primary key: nothing is duplicated
    load(hubspot_source(base_url=sandbox.vendor_url("hubspot"), access_token=_token(sandbox.world)), pipeline)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows, distinct = con.execute("SELECT count(*), count(DISTINCT id) FROM raw_hubspot.contacts").fetchall()[0]
    assert rows == distinct


def test_complete_load_with_flattened_properties_and_deal_associations(sandbox, tmp_path):
    load(_source(sandbox, page_size=25), _pipeline(tmp_path))
    _assert_complete(tmp_path, sandbox.world)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        columns = {r[0] for r in con.execute("DESCRIBE raw_hubspot.contacts").fetchall()}
        assert {"properties__email", "properties__lastmodifieddate", "properties__associatedcompanyid"} <= columns
        assert {"created_at", "updated_at"} <= columns
        linked = con.execute(
            "SELECT count(DISTINCT d.id) FROM raw_hubspot.deals d JOIN raw_hubspot.deals__associations a"
            " ON a._dlt_parent_id = d._dlt_id WHERE a.to_object_type = 'contacts'"
        ).fetchall()[0][0]
    assert linked == _visible(sandbox.world, "hubspot_deals")


def test_second_run_reads_only_the_lookback_window(sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox, page_size=20), pipeline)
    cursors = _cursors(pipeline)
    sandbox.control("POST", "counters/reset")

    load(_source(sandbox, page_size=20), pipeline)

    _assert_complete(tmp_path, sandbox.world)
    window = {t: _modified_since(sandbox.world, t, c - timedelta(seconds=LOOKBACK_SECONDS)) for t, c in cursors.items()}
    extracted = _extracted(pipeline)
    for table, expected in window.items():
        assert extracted.get(table, 0) == expected, table
    assert window["contacts"] < _visible(sandbox.world, "hubspot_contacts")
    # one search per object (each fits a page) and one GET per deal for its associations,
    # where the first run needed a list page per 20 records
    assert _requests(sandbox) == 3 + window["deals"]
    assert _cursors(pipeline) == cursors
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows, distinct, orphans = con.execute(
            "SELECT count(*), count(DISTINCT (d.id, to_object_type, to_id, association_type)), count(*) - count(d.id)"
            " FROM raw_hubspot.deals__associations a LEFT JOIN raw_hubspot.deals d ON d._dlt_id = a._dlt_parent_id"
        ).fetchall()[0]
    assert rows == distinct > 0 and orphans == 0, "merging a deal again duplicated its associations"


def test_next_day_loads_just_the_new_day(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(private_sandbox), pipeline)
    before = {t: _counts(tmp_path, t)[0] for t in STORES}
    cursors = _cursors(pipeline)

    private_sandbox.control("POST", "clock/advance", json={"days": 1})
    load(_source(private_sandbox), pipeline)

    _assert_complete(tmp_path, private_sandbox.world)
    assert _counts(tmp_path, "contacts")[0] > before["contacts"]
    extracted = _extracted(pipeline)
    for table, cursor in cursors.items():
        expected = _modified_since(private_sandbox.world, table, cursor - timedelta(seconds=LOOKBACK_SECONDS))
        assert extracted.get(table, 0) == expected, table
    assert all(_cursors(pipeline)[t] >= c for t, c in cursors.items())


def test_faults_are_survived_quarantined_and_repaired(sandbox, tmp_path):
    sandbox.set_faults(
        rate_429=0.2,
        rate_500=0.1,
        rate_duplicate=0.2,
        rate_malformed=0.05,
        drift="retyped_field",
        retry_after_seconds=0.2,
        seed=11,
    )
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox, page_size=25), pipeline)

    for table, (store, _) in STORES.items():
        rows, distinct = _counts(tmp_path, table)
        assert rows == distinct <= _visible(sandbox.world, store), table
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        quarantined = con.execute("SELECT resource, reason, record FROM raw_hubspot.quarantine").fetchall()
        columns = {r[0] for r in con.execute("DESCRIBE raw_hubspot.contacts").fetchall()}
    assert quarantined, "the malformed records were not quarantined"
    assert all(reason.startswith(("missing primary key", "unparseable timestamp")) for _, reason, _ in quarantined)
    assert not [c for c in columns if "__v_" in c], "a retyped property forked a variant column"
    loaded = sum(_counts(tmp_path, t)[0] for t in STORES)
    assert loaded + len(quarantined) >= sum(_visible(sandbox.world, s) for s, _ in STORES.values())

    sandbox.control("DELETE", "faults")
    load(_source(sandbox, page_size=25), pipeline)
    _assert_complete(tmp_path, sandbox.world)


def test_a_failing_run_keeps_the_cursor_and_the_next_run_resumes(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(private_sandbox), pipeline)
    cursors = _cursors(pipeline)
    private_sandbox.control("POST", "clock/advance", json={"days": 1})

    private_sandbox.set_faults(rate_500=1.0)
    with pytest.raises(Exception, match=r"HTTP 500 after 2 attempt"):
        load(_source(private_sandbox, retry_policy=RetryPolicy(max_attempts=2, backoff_base=0.01)), pipeline)
    assert _cursors(pipeline) == cursors

    private_sandbox.control("DELETE", "faults")
    load(_source(private_sandbox), pipeline)
    _assert_complete(tmp_path, private_sandbox.world)
    assert _cursors(pipeline)["contacts"] > cursors["contacts"]


def test_search_pages_past_the_result_window(sandbox):
    """A window of 30 stands in for HubSpot's 10,000: every record once, never a 400 past it;
    the 40 companies share one modification time, so they are paged by id."""
    api = HubSpotApi(sandbox.vendor_url("hubspot"), _token(sandbox.world), FAST, 100, 15, 30)
    for obj, store in ((CONTACTS, "hubspot_contacts"), (COMPANIES, "hubspot_companies")):
        ids = [r["id"] for page in api.search_pages(obj, START_DATE) for r in page]
        assert len(set(ids)) == _visible(sandbox.world, store), obj.name
    responses = sandbox.control("GET", "counters").json()["responses"]["hubspot"]
    assert set(responses) == {"200"}


def test_a_wrong_token_fails_and_says_so(sandbox, tmp_path):
    pipeline = make_pipeline("hubspot", tmp_path / "warehouse.duckdb", tmp_path / "dlt")
    source = hubspot_source(base_url=sandbox.vendor_url("hubspot"), access_token="pat-wrong")
    with pytest.raises(Exception, match="401") as failure:
        load(source, pipeline)
    assert "SOURCES__HUBSPOT__ACCESS_TOKEN" in str(failure.value)
    assert "pat-wrong" not in str(failure.value)


def test_a_wrong_base_url_fails_at_once_naming_the_setting(sandbox, tmp_path):
    source = hubspot_source(base_url=f"{sandbox.url}/nothing-here", access_token=_token(sandbox.world))
    with pytest.raises(Exception, match="SOURCES__HUBSPOT__BASE_URL"):
        load(source, _pipeline(tmp_path))


def test_missing_credential_names_the_setting(monkeypatch):
    monkeypatch.delenv("SOURCES__HUBSPOT__ACCESS_TOKEN", raising=False)
    with pytest.raises(Exception, match="access_token"):
        dlt.pipeline(pipeline_name="t", destination="duckdb").extract(hubspot_source())
