"""The HubSpot dlt source against the sandbox: complete, incremental, no duplicates, clear failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from json import dumps
from pathlib import Path

import dlt
import pytest
import requests

from ingestion.common.http import RetryPolicy
from ingestion.hubspot import hubspot_source
from ingestion.hubspot.helpers import HubSpotApi
from ingestion.hubspot.settings import COMPANIES, CONTACTS, LOOKBACK_SECONDS, START_DATE
from ingestion.pipelines import load
from tests.ingestion.support import (
    FAULTS,
    assert_failing_run_keeps_cursors,
    assert_load_fails_naming,
    assert_quarantined,
    columns,
    counters,
    credentials,
    cursor_values,
    extracted,
    local_pipeline,
    requests_made,
    row_counts,
    store_count,
    variant_columns,
    warehouse_rows,
)

FAST = RetryPolicy(max_attempts=6, backoff_base=0.01, backoff_max=0.1, timeout=30)
# object table -> (store table, store columns whose latest value at the clock is the last modification)
STORES = {
    "contacts": ("hubspot_contacts", ("updated_at", "optout_at")),
    "companies": ("hubspot_companies", ("updated_at",)),
    "deals": ("hubspot_deals", ("updated_at",)),
}


def _token(world: Path) -> str:
    return credentials(world, "hubspot")["access_token"]


def _visible(world: Path, table: str) -> int:
    return store_count(
        world, f"SELECT count(*) FROM '{{store}}/{table}.parquet' WHERE created_at <= $clock::TIMESTAMPTZ"
    )


def _modified_since(world: Path, table: str, since: datetime) -> int:
    """Visible records whose last modification (as HubSpot reports it, in ms) is at or after `since`."""
    store, changes = STORES[table]
    latest = ", ".join(f"CASE WHEN {c} <= $clock THEN {c} END" for c in changes)
    return store_count(
        world,
        f"SELECT count(*) FROM '{{store}}/{store}.parquet' WHERE created_at <= $clock"
        f" AND epoch_us(greatest(created_at, {latest})) // 1000 >= $since_ms",
        {"since_ms": int(since.timestamp() * 1000)},
    )


def _source(sandbox, **kwargs):
    kwargs.setdefault("retry_policy", FAST)
    return hubspot_source(base_url=sandbox.vendor_url("hubspot"), access_token=_token(sandbox.world), **kwargs)


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return local_pipeline("hubspot", tmp_path)


def _counts(tmp_path: Path, table: str) -> tuple[int, int]:
    return row_counts(tmp_path, f"raw_hubspot.{table}")


def _assert_complete(tmp_path: Path, world: Path) -> None:
    for table, (store, _) in STORES.items():
        rows, distinct = _counts(tmp_path, table)
        assert rows == distinct == _visible(world, store), table


def _cursors(pipeline: dlt.Pipeline) -> dict[str, datetime]:
    return cursor_values(pipeline, "hubspot", dict.fromkeys(STORES, "updatedAt"))


def test_loads_every_contact_and_company_once(sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    source = hubspot_source(base_url=sandbox.vendor_url("hubspot"), access_token=_token(sandbox.world))
    load(source, pipeline)
    for table, store in (("contacts", "hubspot_contacts"), ("companies", "hubspot_companies")):
        rows, distinct = _counts(tmp_path, table)
        assert rows == distinct == _visible(sandbox.world, store), table
    # a second run merges on the primary key: nothing is duplicated
    load(hubspot_source(base_url=sandbox.vendor_url("hubspot"), access_token=_token(sandbox.world)), pipeline)
    rows, distinct = _counts(tmp_path, "contacts")
    assert rows == distinct


def test_complete_load_with_flattened_properties_and_deal_associations(sandbox, tmp_path):
    load(_source(sandbox, page_size=25), _pipeline(tmp_path))
    _assert_complete(tmp_path, sandbox.world)
    loaded = columns(tmp_path, "raw_hubspot.contacts")
    assert {"properties__email", "properties__lastmodifieddate", "properties__associatedcompanyid"} <= loaded.keys()
    assert {"created_at", "updated_at"} <= loaded.keys()
    [(linked,)] = warehouse_rows(
        tmp_path,
        "SELECT count(DISTINCT d.id) FROM raw_hubspot.deals d JOIN raw_hubspot.deals__associations a"
        " ON a._dlt_parent_id = d._dlt_id WHERE a.to_object_type = 'contacts'",
    )
    assert linked == _visible(sandbox.world, "hubspot_deals")


def test_second_run_reads_only_the_lookback_window(sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox, page_size=20), pipeline)
    cursors = _cursors(pipeline)
    links = "SELECT d.id, to_object_type, to_id, association_type FROM raw_hubspot.deals__associations a"
    links += " JOIN raw_hubspot.deals d ON d._dlt_id = a._dlt_parent_id ORDER BY ALL"
    listed = warehouse_rows(tmp_path, links)
    sandbox.control("POST", "counters/reset")

    load(_source(sandbox, page_size=20), pipeline)

    _assert_complete(tmp_path, sandbox.world)
    window = {t: _modified_since(sandbox.world, t, c - timedelta(seconds=LOOKBACK_SECONDS)) for t, c in cursors.items()}
    rows_read = extracted(pipeline)
    for table, expected in window.items():
        assert rows_read.get(table, 0) == expected, table
    assert window["contacts"] < _visible(sandbox.world, "hubspot_contacts")
    # one search per object (each fits a page) and one associations batch read per target
    # (contacts, companies) for the deals found, where the first run needed a list page per 20
    assert 0 < window["deals"] <= 1000
    assert requests_made(sandbox, "hubspot") == 3 + 2
    # The batch read gives the searched deals the links the list gave them.
    assert warehouse_rows(tmp_path, links) == listed
    assert _cursors(pipeline) == cursors
    [(rows, distinct, orphans)] = warehouse_rows(
        tmp_path,
        "SELECT count(*), count(DISTINCT (d.id, to_object_type, to_id, association_type)), count(*) - count(d.id)"
        " FROM raw_hubspot.deals__associations a LEFT JOIN raw_hubspot.deals d ON d._dlt_id = a._dlt_parent_id",
    )
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
    rows_read = extracted(pipeline)
    for table, cursor in cursors.items():
        expected = _modified_since(private_sandbox.world, table, cursor - timedelta(seconds=LOOKBACK_SECONDS))
        assert rows_read.get(table, 0) == expected, table
    assert all(_cursors(pipeline)[t] >= c for t, c in cursors.items())


def test_faults_are_survived_quarantined_and_repaired(sandbox, tmp_path):
    sandbox.set_faults(**FAULTS, rate_malformed=0.05, seed=11)
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox, page_size=25), pipeline)

    for table, (store, _) in STORES.items():
        rows, distinct = _counts(tmp_path, table)
        assert rows == distinct <= _visible(sandbox.world, store), table
    quarantined = assert_quarantined(tmp_path, "raw_hubspot")
    assert not variant_columns(tmp_path, "raw_hubspot", ["contacts"]), "a retyped property forked a variant column"
    loaded = sum(_counts(tmp_path, t)[0] for t in STORES)
    assert loaded + len(quarantined) >= sum(_visible(sandbox.world, s) for s, _ in STORES.values())

    sandbox.control("DELETE", "faults")
    load(_source(sandbox, page_size=25), pipeline)
    _assert_complete(tmp_path, sandbox.world)


def test_a_failing_run_keeps_the_cursor_and_the_next_run_resumes(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    cursors = assert_failing_run_keeps_cursors(private_sandbox, pipeline, partial(_source, private_sandbox), _cursors)

    private_sandbox.control("DELETE", "faults")
    load(_source(private_sandbox), pipeline)
    _assert_complete(tmp_path, private_sandbox.world)
    assert _cursors(pipeline)["contacts"] > cursors["contacts"]


def test_search_pages_by_key_reading_every_record_once(sandbox):
    """Pages of 15, each its own query from the newest change the last one reached: every
    record, never a 400; the 40 companies share one modification time, so they are paged by id."""
    api = HubSpotApi(sandbox.vendor_url("hubspot"), _token(sandbox.world), FAST, 100, 15)
    for obj, store in ((CONTACTS, "hubspot_contacts"), (COMPANIES, "hubspot_companies")):
        ids = [r["id"] for page in api.search_pages(obj, START_DATE) for r in page]
        assert len(set(ids)) == _visible(sandbox.world, store), obj.name
    responses = counters(sandbox)["responses"]["hubspot"]
    assert set(responses) == {"200"}


class _EditedWhileSearched:
    """HubSpot's search over ten contacts modified a minute apart, as the API pages it (sorted,
    `after` offsets); contact 2 is edited right after the first page is served. The sandbox
    cannot change a record between two requests, so this stands in for that one behaviour."""

    def __init__(self) -> None:
        self.t0 = 1_767_225_600_000  # 2026-01-01 in ms
        self.modified = {str(i): self.t0 + i * 60_000 for i in range(1, 11)}
        self.queries = 0

    def post(self, url: str, json: dict) -> requests.Response:
        first = json["filterGroups"][0]["filters"][0]
        bound, operator = int(first["value"]), first["operator"]
        kept = sorted((m, i) for i, m in self.modified.items() if (m >= bound if operator == "GTE" else m > bound))
        offset, limit = int(json.get("after", 0)), json["limit"]
        page = kept[offset : offset + limit]
        self.queries += 1
        if self.queries == 1:
            self.modified["2"] = self.t0 + 3_600_000
        body = {"results": [{"id": i, "properties": {"lastmodifieddate": str(m)}} for m, i in page]}
        if offset + limit < len(kept):
            body["paging"] = {"next": {"after": str(offset + limit)}}
        response = requests.Response()
        response.status_code, response._content = 200, dumps(body).encode()
        return response


def test_a_record_edited_while_the_search_pages_shifts_no_other_out_of_reach():
    vendor = _EditedWhileSearched()
    api = HubSpotApi("http://hubspot.invalid", "pat-test", FAST, 100, 3)
    api.search_session.post = vendor.post
    read = {r["id"] for page in api.search_pages(CONTACTS, datetime.fromtimestamp(vendor.t0 / 1000, UTC)) for r in page}
    assert read == set(vendor.modified)


def test_a_wrong_token_fails_and_says_so(sandbox, tmp_path):
    source = hubspot_source(base_url=sandbox.vendor_url("hubspot"), access_token="pat-wrong")
    failure = assert_load_fails_naming(
        source, _pipeline(tmp_path), "SOURCES__HUBSPOT__ACCESS_TOKEN", secret="pat-wrong"
    )
    assert "401" in str(failure)


def test_a_wrong_base_url_fails_at_once_naming_the_setting(sandbox, tmp_path):
    source = hubspot_source(base_url=f"{sandbox.url}/nothing-here", access_token=_token(sandbox.world))
    assert_load_fails_naming(source, _pipeline(tmp_path), "SOURCES__HUBSPOT__BASE_URL")


def test_missing_credential_names_the_setting(monkeypatch):
    monkeypatch.delenv("SOURCES__HUBSPOT__ACCESS_TOKEN", raising=False)
    with pytest.raises(Exception, match="access_token"):
        dlt.pipeline(pipeline_name="t", destination="duckdb").extract(hubspot_source())
