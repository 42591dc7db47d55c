"""The HubSpot dlt source against the sandbox: complete, no duplicates, clear failures."""

from __future__ import annotations

import json

import dlt
import duckdb
import pytest

from ingestion.hubspot import hubspot_source
from ingestion.pipelines import load, make_pipeline


def _token(world) -> str:
    return json.loads((world / "world.json").read_text())["credentials"]["hubspot"]["access_token"]


def _visible(world, table: str) -> int:
    clock = json.loads((world / "world.json").read_text())["clock"]
    con = duckdb.connect()
    return con.execute(
        f"SELECT count(*) FROM read_parquet('{world}/store/{table}.parquet') WHERE created_at <= ?::TIMESTAMPTZ",
        [clock],
    ).fetchall()[0][0]


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


def test_a_wrong_token_fails_and_says_so(sandbox, tmp_path):
    pipeline = make_pipeline("hubspot", tmp_path / "warehouse.duckdb", tmp_path / "dlt")
    source = hubspot_source(base_url=sandbox.vendor_url("hubspot"), access_token="pat-wrong")
    with pytest.raises(Exception, match="401"):
        load(source, pipeline)


def test_missing_credential_names_the_setting(monkeypatch):
    monkeypatch.delenv("SOURCES__HUBSPOT__ACCESS_TOKEN", raising=False)
    with pytest.raises(Exception, match="access_token"):
        dlt.pipeline(pipeline_name="t", destination="duckdb").extract(hubspot_source())
