"""Erasure requests from a file, as a shop's webhook receiver writes them, and from the sandbox."""

from __future__ import annotations

import json

import duckdb
import pytest

from ingestion.common.errors import VendorError
from ingestion.pipelines import load, make_pipeline
from ingestion.privacy import privacy_source, read_erasure_requests
from tests.conftest import running_sandbox


def test_requests_load_from_a_json_lines_file(tmp_path):
    requests_file = tmp_path / "requests.jsonl"
    lines = [
        {"request_id": "r1", "email": "a@example.com", "requested_at": "2026-01-02T03:04:05Z"},
        {
            "request_id": "r2",
            "email": "b@example.com",
            "requested_at": "2026-01-03T00:00:00Z",
            "identifiers": ["shopify:customer_id:123"],
        },
    ]
    requests_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    warehouse = tmp_path / "warehouse.duckdb"
    source = privacy_source(base_url=None, api_key=None, requests_file=str(requests_file))
    load(source, make_pipeline("privacy", warehouse, tmp_path / "dlt"))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT request_id, email, identifiers FROM raw_privacy.erasure_requests ORDER BY 1"
        ).fetchall()
    assert [(r, e) for r, e, _ in rows] == [("r1", "a@example.com"), ("r2", "b@example.com")]
    assert json.loads(rows[1][2]) == ["shopify:customer_id:123"]


def test_processed_requests_are_not_loaded_again(tmp_path):
    # The shop's file goes on listing a request after it was processed and its row erased.
    requests_file = tmp_path / "requests.jsonl"
    lines = [
        {"request_id": "r1", "email": None, "requested_at": "2026-01-02", "identifiers": ["shopify:customer_id:1"]},
        {"request_id": "r2", "email": "b@example.com", "requested_at": "2026-01-03"},
    ]
    requests_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA privacy")
        con.execute("CREATE TABLE privacy.erasure_log (request_id VARCHAR PRIMARY KEY)")
        con.execute("INSERT INTO privacy.erasure_log VALUES ('r1')")
    source = privacy_source(base_url=None, api_key=None, requests_file=str(requests_file))
    load(source, make_pipeline("privacy", warehouse, tmp_path / "dlt"))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT request_id FROM raw_privacy.erasure_requests").fetchall() == [("r2",)]


def test_requests_read_from_a_csv_file(tmp_path):
    requests_file = tmp_path / "requests.csv"
    requests_file.write_text(
        "request_id,email,requested_at,identifiers\nr1,a@example.com,2026-01-02,hubspot:contact_id:7;shopify:customer_id:9\n"
    )
    (request,) = read_erasure_requests(requests_file=str(requests_file))
    assert request["identifiers"] == ["hubspot:contact_id:7", "shopify:customer_id:9"]


@pytest.fixture()
def served_requests(fresh_world):
    """The sandbox over a world whose shop received two erasure requests, one after its clock."""
    store = fresh_world / "store"
    with duckdb.connect() as con:
        path = f"{store}/erasure_requests.parquet"
        con.execute(
            f"COPY (SELECT * FROM '{path}' UNION ALL BY NAME SELECT * FROM (VALUES "
            "('er_1', 'ana@example.com', TIMESTAMPTZ '2020-01-01 00:00:00+00', 'p1'), "
            "('er_2', 'ben@example.com', TIMESTAMPTZ '2999-01-01 00:00:00+00', 'p2')) "
            f"AS t(request_id, email, requested_at, _person_id)) TO '{path}.new' (FORMAT parquet)"
        )
        (store / "erasure_requests.parquet.new").replace(path)
    with running_sandbox(fresh_world) as sandbox:
        yield sandbox


def test_requests_read_from_the_sandbox(served_requests):
    requests = read_erasure_requests(base_url=f"{served_requests.url}/_sandbox")
    # Only those received by the world's clock.
    assert requests == [
        {"request_id": "er_1", "email": "ana@example.com", "requested_at": "2020-01-01T00:00:00Z", "identifiers": []}
    ]


def test_a_missing_source_says_what_to_set(tmp_path):
    with pytest.raises(VendorError, match="SOURCES__PRIVACY__BASE_URL"):
        read_erasure_requests()
    with pytest.raises(VendorError, match="SOURCES__PRIVACY__REQUESTS_FILE"):
        read_erasure_requests(requests_file=str(tmp_path / "nope.jsonl"))
    with pytest.raises(VendorError, match="SOURCES__PRIVACY__BASE_URL"):
        read_erasure_requests(base_url="http://127.0.0.1:9")


def test_a_key_with_a_line_break_is_used_without_it_and_a_refused_request_never_quotes_it(served_requests):
    sandbox, key = served_requests, "privacy-key-0123456789SECRET"
    requests = read_erasure_requests(base_url=f"{sandbox.url}/_sandbox", api_key=f"{key}\r\n")
    assert [r["request_id"] for r in requests] == ["er_1"]
    with pytest.raises(VendorError) as error:  # a line break inside cannot be stripped
        read_erasure_requests(base_url=f"{sandbox.url}/_sandbox", api_key=f"{key[:10]}\n{key[10:]}")
    assert "SOURCES__PRIVACY__API_KEY" in str(error.value)
    assert "SECRET" not in str(error.value) and error.value.__cause__ is None
