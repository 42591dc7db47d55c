"""Erasure requests processed as one batch: each person resolved on their own, rows deleted in
one pass per table and counted per request, and the whole batch undone by a crash.

A hand-built warehouse (a few rows per table) stands in for a loaded one, so these run in
seconds; `test_privacy.py` runs the same code on a world loaded through every loader.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import duckdb
import pytest

from activation.destinations.base import Outcome
from activation.destinations.klaviyo import KlaviyoDestination
from activation.privacy import erase as erase_module
from activation.privacy import platform_retries
from activation.privacy.access import build_export
from activation.privacy.erase import ErasureRequest, erase_requests, pending_requests
from activation.privacy.person import parse_identifier, resolve, resolve_all
from ingestion.common.erasure import checkout_key, identifier_hash, read_tombstone

ANA, BEN, CAL = "ana@example.com", "ben@example.com", "cal@example.com"


def _warehouse(path: Path) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA raw_shopify; CREATE SCHEMA raw_mixpanel; CREATE SCHEMA raw_privacy")
        con.execute("CREATE TABLE raw_shopify.customers (id BIGINT, email VARCHAR, phone VARCHAR, _dlt_id VARCHAR)")
        con.execute(
            "INSERT INTO raw_shopify.customers VALUES (101, 'Ana@Example.com', '+15550001', 'c1'), "
            "(102, ?, '+15550002', 'c2'), (103, ?, '+15550003', 'c3')",
            [BEN, CAL],
        )
        # dlt names the root only in children of merged tables: these hang off their parent alone.
        con.execute(
            "CREATE TABLE raw_shopify.customers__addresses (city VARCHAR, _dlt_parent_id VARCHAR, _dlt_id VARCHAR)"
        )
        con.execute("INSERT INTO raw_shopify.customers__addresses VALUES ('Lyon', 'c1', 'a1'), ('Oslo', 'c3', 'a3')")
        con.execute("CREATE SCHEMA marts")
        con.execute(
            "CREATE TABLE marts.customer_identifiers "
            "(customer_id VARCHAR, source VARCHAR, id_type VARCHAR, id_value VARCHAR)"
        )
        con.execute(
            "INSERT INTO marts.customer_identifiers VALUES "
            "('cus_1', 'shopify', 'email', 'Ana@Example.com'), ('cus_1', 'shopify', 'customer_id', '101'), "
            "('cus_2', 'shopify', 'email', ?), ('cus_2', 'shopify', 'customer_id', '102'), "
            "('cus_3', 'shopify', 'email', ?), ('cus_3', 'shopify', 'customer_id', '103')",
            [BEN, CAL],
        )
        con.execute(
            "CREATE TABLE marts.fct_checkouts (checkout_token VARCHAR, checkout_id BIGINT, customer_id VARCHAR)"
        )
        # Ben's checkout on Cal's tablet, credited to nobody yet; and someone's whose numeric
        # Shopify checkout id equals Ana's customer id (an id of another kind, not hers).
        con.execute("INSERT INTO marts.fct_checkouts VALUES ('tok_b', 3100, NULL), ('tok_x', 101, NULL)")
        con.execute("CREATE TABLE marts.dim_customers (customer_id VARCHAR, orders INTEGER)")
        con.execute("INSERT INTO marts.dim_customers VALUES ('cus_1', 1), ('cus_2', 1), ('cus_3', 1)")
        con.execute(
            "CREATE TABLE raw_shopify.orders (id BIGINT, email VARCHAR, checkout_token VARCHAR, "
            "customer__id BIGINT, _dlt_id VARCHAR)"
        )
        con.execute(
            "INSERT INTO raw_shopify.orders VALUES (1, ?, 'tok_a', 101, 'o1'), (2, ?, 'tok_b', 102, 'o2'), "
            "(3, ?, 'tok_c', 103, 'o3')",
            [ANA, BEN, CAL],
        )
        con.execute(
            "CREATE TABLE raw_shopify.orders__line_items "
            "(sku VARCHAR, _dlt_root_id VARCHAR, _dlt_parent_id VARCHAR, _dlt_id VARCHAR)"
        )
        con.execute(
            "INSERT INTO raw_shopify.orders__line_items VALUES ('s1', 'o1', 'o1', 'l1'), ('s2', 'o1', 'o1', 'l2'), "
            "('s3', 'o2', 'o2', 'l3'), ('s4', 'o3', 'o3', 'l4')"
        )
        con.execute(
            "CREATE TABLE raw_mixpanel.events (event VARCHAR, device_id VARCHAR, user_id VARCHAR, "
            "checkout_id VARCHAR, _dlt_id VARCHAR)"
        )
        con.execute(
            "INSERT INTO raw_mixpanel.events VALUES "
            # Ana's own phone: her login and her checkout, and an anonymous view.
            "('login', 'dev_ana', ?, NULL, 'e1'), ('checkout', 'dev_ana', NULL, 'tok_a', 'e2'), "
            "('view', 'dev_ana', NULL, NULL, 'e3'), "
            # The family laptop: Ana and Ben both logged in; it is neither's alone.
            "('login', 'dev_home', ?, NULL, 'e4'), ('login', 'dev_home', ?, NULL, 'e5'), "
            "('view', 'dev_home', NULL, NULL, 'e6'), "
            # Cal's tablet, on which Ben once checked out.
            "('login', 'dev_cal', ?, NULL, 'e7'), ('checkout', 'dev_cal', NULL, 'tok_b', 'e8')",
            [ANA, ANA, BEN, CAL],
        )
        con.execute("CREATE TABLE raw_shopify.quarantine (resource VARCHAR, record VARCHAR)")
        con.execute(
            "INSERT INTO raw_shopify.quarantine VALUES ('orders', ?), ('orders', ?)",
            [json.dumps({"email": BEN.upper()}), json.dumps({"email": CAL})],
        )
        con.execute(
            "CREATE TABLE raw_privacy.erasure_requests (request_id VARCHAR, email VARCHAR, "
            "requested_at TIMESTAMPTZ, identifiers JSON)"
        )
        con.execute(
            "INSERT INTO raw_privacy.erasure_requests VALUES ('r_ana', ?, '2026-11-01', NULL), "
            "('r_ben', NULL, '2026-11-02', '[\"shopify:customer_id:102\"]'), "
            # Malformed: it must wait for a fixed copy without holding up the others.
            "('r_bad', NULL, '2026-11-03', '[\"shopify:103\"]')",
            [ANA],
        )
    return path


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list:
    return [r[0] if len(r) == 1 else r for r in con.execute(sql).fetchall()]


def _requests(warehouse: Path) -> list[ErasureRequest]:
    requests = pending_requests(warehouse)
    assert [r.request_id for r in requests] == ["r_ana", "r_ben", "r_bad"]
    return requests


BEN_BY_ID = ("shopify", "customer_id", "102")


def test_a_batch_resolves_each_person_as_a_request_alone_would(tmp_path):
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        ana, ben = resolve_all(con, [([ANA], []), ([], [BEN_BY_ID])])
        alone = resolve(con, [ANA]), resolve(con, [], [BEN_BY_ID])
    assert (ana.customer_ids, ben.customer_ids) == ({"cus_1"}, {"cus_2"})
    assert {"101", "+15550001", "dev_ana"} <= ana.values
    assert {BEN, "+15550002"} <= ben.values
    assert not {CAL, "103", "cus_3", "dev_cal"} & (ana.values | ben.values)
    # Alone, neither owns the laptop both logged in on; erased together, nobody else is on it.
    for batched, single in zip((ana, ben), alone, strict=True):
        assert "dev_home" not in single.values
        assert batched.values - single.values == {"dev_home"}
        assert batched.identifiers - single.identifiers == {("mixpanel", "device_id", "dev_home")}
        assert batched.customer_ids == single.customer_ids


class _Recording:
    name = "recording"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def erase(self, emails):
        self.calls.append(list(emails))
        return [Outcome(e, "ok") for e in emails]


def test_a_batch_deletes_each_persons_rows_and_logs_them_per_request(tmp_path):
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    destination = _Recording()
    told: list[str] = []
    batch = erase_requests(warehouse, _requests(warehouse), destinations=[destination], progress=told.append)

    ana, ben = batch.requests
    assert ana.rows_deleted == {
        "marts.customer_identifiers": 2,
        "marts.dim_customers": 1,
        "raw_mixpanel.events": 6,  # her phone's three, and the laptop she shared with Ben
        "raw_privacy.erasure_requests": 1,  # her request names her email
        "raw_shopify.customers": 1,
        "raw_shopify.customers__addresses": 1,
        "raw_shopify.orders": 1,
        "raw_shopify.orders__line_items": 2,
    }
    assert ben.rows_deleted == {
        "marts.customer_identifiers": 2,
        "marts.dim_customers": 1,
        "marts.fct_checkouts": 1,
        "raw_mixpanel.events": 4,  # the laptop's three, and his checkout on Cal's tablet
        # His request names only his Shopify id: found by the request's own id, not by an email.
        "raw_privacy.erasure_requests": 1,
        "raw_shopify.customers": 1,
        "raw_shopify.orders": 1,
        "raw_shopify.orders__line_items": 1,
        "raw_shopify.quarantine": 1,
    }
    # The batch's own count holds each row once: the laptop's three events were both of theirs.
    assert batch.rows_by_schema() == {"marts": 7, "raw_mixpanel": 7, "raw_privacy": 2, "raw_shopify": 9}
    # The reason is logged and published as Dagster metadata: it says what is wrong, without the value.
    assert batch.rejected == {
        "r_bad": "identifier 1 is not source:id_type:value (e.g. shopify:customer_id:123): "
        "it holds one ':' where two separate its three parts"
    }
    assert destination.calls == [[ANA], [BEN]]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert _rows(con, "SELECT email FROM raw_shopify.customers") == [CAL]
        assert _rows(con, "SELECT city FROM raw_shopify.customers__addresses") == ["Oslo"]
        assert _rows(con, "SELECT DISTINCT customer_id FROM marts.customer_identifiers") == ["cus_3"]
        assert _rows(con, "SELECT customer_id FROM marts.dim_customers") == ["cus_3"]
        assert _rows(con, "SELECT checkout_token FROM marts.fct_checkouts") == ["tok_x"]
        assert _rows(con, "SELECT sku FROM raw_shopify.orders__line_items") == ["s4"]
        # Cal's tablet is not Ben's alone and keeps her login; his checkout on it is his and
        # goes (left, the next build would credit his cart to Cal, the tablet's one person).
        assert _rows(con, "SELECT _dlt_id FROM raw_mixpanel.events ORDER BY 1") == ["e7"]
        assert _rows(con, "SELECT record FROM raw_shopify.quarantine") == [json.dumps({"email": CAL})]
        # A processed request names its person: only the one left pending is kept.
        assert _rows(con, "SELECT request_id FROM raw_privacy.erasure_requests") == ["r_bad"]
        logged = dict(_rows(con, "SELECT request_id, rows_deleted FROM privacy.erasure_log"))
    assert {k: json.loads(v) for k, v in logged.items()} == {"r_ana": ana.rows_deleted, "r_ben": ben.rows_deleted}
    assert [r.request_id for r in pending_requests(warehouse)] == ["r_bad"]
    # The platforms are told while the rows are deleted: either may report first.
    assert (
        len([m for m in told[:2] if m.startswith("2 request(s): 2 customer(s), 25 rows deleted from 10 table(s) in ")])
        == 1
    )
    assert "email platforms: 2/2 request(s) sent" in told[:2]
    assert told[2].startswith("warehouse file rewritten without the deleted rows")


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("jane@x.com", "it holds no ':' where two separate its three parts"),
        ("shopify::jane@x.com", "its id_type is empty"),
        (":email:", "its source and value are empty"),
    ],
)
def test_a_malformed_identifier_is_refused_saying_what_is_wrong_without_quoting_it(text, what):
    with pytest.raises(ValueError) as raised:
        parse_identifier(text, 2)
    assert str(raised.value) == f"identifier 2 is not source:id_type:value (e.g. shopify:customer_id:123): {what}"


class _Crash(BaseException):
    """A process dying mid-batch (not an error a destination reports)."""


class _CrashingAfterOne(_Recording):
    def erase(self, emails):
        if self.calls:
            raise _Crash
        return super().erase(emails)


def test_a_crash_mid_batch_leaves_every_request_pending_with_its_rows_to_resolve_from(tmp_path):
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = ("raw_shopify.customers", "raw_mixpanel.events")
        before = {t: _rows(con, f"SELECT count(*) FROM {t}")[0] for t in tables}
    with pytest.raises(_Crash):
        erase_requests(warehouse, _requests(warehouse), destinations=[_CrashingAfterOne()])
    with duckdb.connect(str(warehouse), read_only=True) as con:
        after = {t: _rows(con, f"SELECT count(*) FROM {t}")[0] for t in before}
        assert _rows(con, "SELECT count(*) FROM privacy.erased_identifiers") == [0]
    assert after == before
    # The next run does the whole batch.
    batch = erase_requests(warehouse, _requests(warehouse), destinations=[_Recording()])
    assert [r.request_id for r in batch.requests] == ["r_ana", "r_ben"]
    assert [r.request_id for r in pending_requests(warehouse)] == ["r_bad"]


class _Slow(_Recording):
    """A platform answering at its deletion limit, one person at a time."""

    def __init__(self, first_answered) -> None:
        super().__init__()
        self.first_answered = first_answered

    def erase(self, emails):
        outcomes = super().erase(emails)
        self.first_answered.set()
        time.sleep(0.5)
        return outcomes


def test_a_failing_delete_stops_asking_the_platforms_and_leaves_every_request_pending(tmp_path, monkeypatch):
    # The platforms are told while DuckDB deletes; when the delete fails, the batch rolls back
    # and the platforms are not asked about anyone else (the next run asks again).
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    first_answered = threading.Event()
    platform = _Slow(first_answered)

    def failing_delete(con, people):
        first_answered.wait(10)
        raise duckdb.IOException("disk full")

    monkeypatch.setattr(erase_module, "delete_rows", failing_delete)
    with pytest.raises(duckdb.IOException, match="disk full"):
        erase_requests(warehouse, _requests(warehouse), destinations=[platform])
    assert platform.calls == [[ANA]], "the platforms were asked about people after the delete failed"
    assert [r.request_id for r in pending_requests(warehouse)] == ["r_ana", "r_ben", "r_bad"]


class _Refusing(_Recording):
    """A platform that refuses Ana's deletion and is down for everyone else."""

    def erase(self, emails):
        self.calls.append(list(emails))
        if ANA in [e.lower() for e in emails]:
            return [Outcome(e, "rejected", "profile locked") for e in emails]
        raise ConnectionError("platform down")


def test_deletions_a_platform_did_not_accept_are_asked_again_until_it_does(tmp_path):
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    refusing = _Refusing()
    batch = erase_requests(warehouse, _requests(warehouse), destinations=[refusing])

    # The warehouse does not wait for the platform: both people are gone and their requests done.
    assert [r.request_id for r in batch.requests] == ["r_ana", "r_ben"]
    assert [r.request_id for r in pending_requests(warehouse)] == ["r_bad"]
    with duckdb.connect(str(warehouse)) as con:
        assert platform_retries.pending(con) == {"recording": [(ANA, "r_ana"), (BEN, "r_ben")]}
        errors = dict(con.execute(f"SELECT email, error FROM {platform_retries.TABLE}").fetchall())
    assert errors == {ANA: "profile locked", BEN: "ConnectionError: platform down"}

    # Still refusing: both stay, with a second attempt counted.
    told: list[str] = []
    assert platform_retries.retry(str(warehouse), [_Refusing()], told.append) == {
        "recording": {"deleted": 0, "still_pending": 2}
    }
    assert told == ["recording: 0 earlier deletion(s) now accepted, 2 still pending"]
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute(f"SELECT max(attempts) FROM {platform_retries.TABLE}").fetchall() == [(2,)]

    # The person may ask what is held about them: the address waiting at the platform.
    (waiting,) = build_export(warehouse, ANA)["tables"][platform_retries.TABLE]
    assert (waiting["destination"], waiting["email"], waiting["request_id"]) == ("recording", ANA, "r_ana")

    # A platform not configured now keeps its addresses; once it accepts, nothing is left.
    assert platform_retries.retry(str(warehouse), []) == {}
    assert platform_retries.waiting(str(warehouse)) == 2
    # A night without new requests: the accepted addresses go, and the file is rewritten so
    # their bytes go with them.
    healthy = _Recording()
    told.clear()
    batch = erase_requests(warehouse, [], destinations=[healthy], progress=told.append)
    assert batch.platform_retries == {"recording": {"deleted": 2, "still_pending": 0}}
    assert healthy.calls == [[ANA, BEN]]
    assert platform_retries.waiting(str(warehouse)) == 0
    assert any(line.startswith("warehouse file rewritten") for line in told), told
    assert platform_retries.retry(str(warehouse), [healthy]) == {} and len(healthy.calls) == 1
    assert platform_retries.TABLE not in build_export(warehouse, ANA)["tables"]
    # Nothing deleted, nothing to rewrite.
    told.clear()
    erase_requests(warehouse, [], destinations=[healthy], progress=told.append)
    assert told == []


KEY = "pk_0123456789abcdefSECRET"


def _held_about(warehouse: Path, email: str) -> str:
    """The stored platform errors and the person's access export, as one text to search."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        stored = _rows(con, f"SELECT error FROM {platform_retries.TABLE}")
    assert stored, "the platform's failure was not remembered"
    return json.dumps([stored, build_export(warehouse, email)], default=str)


def test_a_key_requests_refuses_never_reaches_the_pending_deletions_or_the_access_export(tmp_path):
    # A key from a CRLF env file: requests refuses the header, quoting it whole in its error.
    klaviyo = KlaviyoDestination("http://127.0.0.1:9", KEY + "\r")
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    try:
        erase_requests(warehouse, _requests(warehouse), destinations=[klaviyo])
    finally:
        klaviyo.close()
    held = _held_about(warehouse, ANA)
    assert "pk_0123" not in held and "SECRET" not in held
    assert "SOURCES__KLAVIYO__API_KEY" in held  # what to fix, for whoever reads the table


class _Leaking(_Recording):
    """A platform whose error quotes its credentials (a header, a key held in the environment)."""

    def erase(self, emails):
        raise RuntimeError(f"refused header 'Authorization: Bearer {KEY}' (key sk-acct-7f3e9a61)")


def test_a_platform_error_quoting_a_credential_is_stored_and_exported_without_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIVATION__KLAVIYO__API_KEY", "sk-acct-7f3e9a61")
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    erase_requests(warehouse, _requests(warehouse), destinations=[_Leaking()])
    platform_retries.retry(str(warehouse), [_Leaking()])  # a second failure rewrites the error
    held = _held_about(warehouse, ANA)
    assert KEY not in held and "SECRET" not in held and "7f3e9a61" not in held
    assert "RuntimeError: refused header" in held  # what failed is still there


def test_an_error_stored_with_a_credential_before_is_exported_without_it(tmp_path):
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(warehouse)) as con:
        platform_retries.ensure(con)
        con.execute(
            f"INSERT INTO {platform_retries.TABLE} VALUES ('klaviyo', ?, 'r_ana', ?, 1, now(), now())",
            [ANA, f"InvalidHeader: ... in header value: 'Klaviyo-API-Key {KEY}\\r'"],
        )
    (waiting,) = build_export(warehouse, ANA)["tables"][platform_retries.TABLE]
    assert waiting["error"] == "InvalidHeader: ... in header value: 'Klaviyo-API-Key ***\\r'"


def test_a_platform_that_accepts_every_deletion_leaves_nothing_pending(tmp_path):
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    erase_requests(warehouse, _requests(warehouse), destinations=[_Recording()])
    assert platform_retries.waiting(str(warehouse)) == 0


class _Silent(_Recording):
    """A platform whose answer leaves out the addresses it was asked about."""

    def erase(self, emails):
        self.calls.append(list(emails))
        return []


def test_an_address_the_platform_did_not_answer_for_stays_pending(tmp_path):
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    erase_requests(warehouse, _requests(warehouse), destinations=[_Silent()])
    with duckdb.connect(str(warehouse)) as con:
        errors = dict(con.execute(f"SELECT email, error FROM {platform_retries.TABLE}").fetchall())
    assert errors == {ANA: "no answer for this address", BEN: "no answer for this address"}


def test_rows_of_requests_processed_earlier_are_deleted_on_the_next_run(tmp_path):
    # A warehouse from a version that kept a processed request naming identifiers only.
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    erase_requests(warehouse, _requests(warehouse))
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "INSERT INTO raw_privacy.erasure_requests VALUES "
            "('r_ben', NULL, '2026-11-02', '[\"shopify:customer_id:102\"]')"
        )
    assert [r.request_id for r in pending_requests(warehouse)] == ["r_bad"]
    # The privacy load's completed package that brought the row back holds it too.
    package = tmp_path / "dlt" / "privacy" / "load" / "loaded" / "1700000000.1"
    package.mkdir(parents=True)
    (package / "erasure_requests.jsonl").write_text(
        '{"request_id": "r_ben", "identifiers": "shopify:customer_id:102"}\n'
    )

    told: list[str] = []
    batch = erase_requests(warehouse, [], pipelines_dir=tmp_path / "dlt", progress=told.append)
    assert batch.rows_deleted == {"raw_privacy.erasure_requests": 1}
    assert batch.packages_deleted == 1 and not package.exists()
    assert told[0] == "1 row(s) of requests processed on earlier runs deleted from raw_privacy.erasure_requests"
    assert told[1].startswith("warehouse file rewritten without the deleted rows")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert _rows(con, "SELECT request_id FROM raw_privacy.erasure_requests") == ["r_bad"]
    # Nothing left to delete: a run with nothing to do does nothing, and keeps later packages.
    package.mkdir(parents=True)
    told.clear()
    batch = erase_requests(warehouse, [], pipelines_dir=tmp_path / "dlt", progress=told.append)
    assert told == [] and batch.packages_deleted == 0 and package.exists()


def test_a_deals_link_to_an_erased_contact_is_deleted_and_the_deal_kept(tmp_path):
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA raw_hubspot")
        con.execute("CREATE TABLE raw_hubspot.contacts (id VARCHAR, email VARCHAR, _dlt_id VARCHAR)")
        con.execute("INSERT INTO raw_hubspot.contacts VALUES ('301', ?, 'c1'), ('399', 'zed@example.com', 'c2')", [ANA])
        con.execute("CREATE TABLE raw_hubspot.deals (id VARCHAR, amount DOUBLE, _dlt_id VARCHAR)")
        con.execute("INSERT INTO raw_hubspot.deals VALUES ('d1', 120, 'dl1')")
        con.execute(
            "CREATE TABLE raw_hubspot.deals__associations (to_object_type VARCHAR, to_id VARCHAR, "
            "association_type VARCHAR, _dlt_root_id VARCHAR, _dlt_parent_id VARCHAR, _dlt_id VARCHAR)"
        )
        con.execute(
            "INSERT INTO raw_hubspot.deals__associations VALUES "
            "('contacts', '301', 'deal_to_contact', 'dl1', 'dl1', 'a1'), "
            # A company whose id happens to equal her contact's is not hers.
            "('companies', '301', 'deal_to_company', 'dl1', 'dl1', 'a2'), "
            "('contacts', '399', 'deal_to_contact', 'dl1', 'dl1', 'a3'), "
            # Her Shopify customer id is 101: a link to contact 101 is to someone else.
            "('contacts', '101', 'deal_to_contact', 'dl1', 'dl1', 'a4')"
        )
    batch = erase_requests(warehouse, _requests(warehouse)[:1])

    (ana,) = batch.requests
    assert ana.rows_deleted["raw_hubspot.contacts"] == 1
    assert ana.rows_deleted["raw_hubspot.deals__associations"] == 1
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert _rows(con, "SELECT id FROM raw_hubspot.deals") == ["d1"]
        assert con.execute(
            "SELECT to_object_type, to_id FROM raw_hubspot.deals__associations ORDER BY 1, 2"
        ).fetchall() == [("companies", "301"), ("contacts", "101"), ("contacts", "399")]


def test_a_quarantined_deals_raw_link_to_an_erased_contact_is_removed_and_the_deal_kept(tmp_path):
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    deal = {
        "id": "d2",
        "properties": {"amount": "not a number"},
        "associations": {
            "contacts": {"results": [{"id": "301", "type": "deal_to_contact"}, {"id": "399"}]},
            "companies": {"results": [{"id": "301", "type": "deal_to_company"}]},
        },
    }
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA raw_hubspot")
        con.execute("CREATE TABLE raw_hubspot.contacts (id VARCHAR, email VARCHAR, _dlt_id VARCHAR)")
        con.execute("INSERT INTO raw_hubspot.contacts VALUES ('301', ?, 'c1')", [ANA])
        con.execute("CREATE TABLE raw_hubspot.quarantine (resource VARCHAR, reason VARCHAR, record VARCHAR)")
        con.execute(
            "INSERT INTO raw_hubspot.quarantine VALUES ('deals', 'amount is not a number', ?), "
            "('deals', 'amount is not a number', ?), ('notes', 'free text', 'call Ana about {\"associations\"')",
            [json.dumps(deal), json.dumps({**deal, "id": "d3", "associations": {}})],
        )
    # The access export lists the quarantined deal that links to her.
    exported = build_export(warehouse, ANA)["tables"]["raw_hubspot.quarantine"]
    # (The export shows a JSON payload as JSON.)
    assert [r["record"]["id"] for r in exported] == ["d2"]

    batch = erase_requests(warehouse, _requests(warehouse)[:1])

    (ana,) = batch.requests
    assert ana.rows_deleted["raw_hubspot.quarantine (links removed)"] == 1
    with duckdb.connect(str(warehouse), read_only=True) as con:
        records = [
            json.loads(r) for r in _rows(con, "SELECT record FROM raw_hubspot.quarantine WHERE resource = 'deals'")
        ]
    assert [r["id"] for r in records] == ["d2", "d3"]
    assert records[0]["associations"]["contacts"]["results"] == [{"id": "399"}]
    assert records[0]["associations"]["companies"] == deal["associations"]["companies"]
    assert records[0]["properties"] == deal["properties"]


def test_an_identity_record_of_hers_goes_whole_from_every_identity_table(tmp_path):
    # Her order carried her email and a checkout token; her login used the family's laptop.
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA intermediate")
        con.execute(
            "CREATE TABLE intermediate.int_identity__record_occurrences "
            "(record_id VARCHAR, kind VARCHAR, node VARCHAR, _dlt_load_id VARCHAR)"
        )
        con.execute(
            "INSERT INTO intermediate.int_identity__record_occurrences VALUES "
            "('shopify_order:1', 'email', 'email:ana@example.com', 'l1'), "
            "('shopify_order:1', 'shopify_checkout', 'shopify_checkout:tok_a', 'l1'), "
            "('shopify_order:2', 'email', ?, 'l1'), "
            "('shopify_order:2', 'shopify_checkout', 'shopify_checkout:tok_b', 'l1')",
            [f"email:{BEN}"],
        )
        con.execute(
            "CREATE TABLE intermediate.int_identity__analytics_occurrences "
            "(record_id VARCHAR, kind VARCHAR, node VARCHAR)"
        )
        con.execute(
            "INSERT INTO intermediate.int_identity__analytics_occurrences VALUES "
            "('mixpanel_login:laptop|101', 'mixpanel_device', 'mixpanel_device:laptop'), "
            "('mixpanel_login:laptop|101', 'mixpanel_user', 'mixpanel_user:101'), "
            "('mixpanel_login:laptop|102', 'mixpanel_device', 'mixpanel_device:laptop'), "
            "('mixpanel_login:laptop|102', 'mixpanel_user', 'mixpanel_user:102')"
        )
    batch = erase_requests(warehouse, _requests(warehouse)[:1])

    (ana,) = batch.requests
    assert ana.rows_deleted["intermediate.int_identity__record_occurrences"] == 2
    assert ana.rows_deleted["intermediate.int_identity__analytics_occurrences"] == 2
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert _rows(con, "SELECT DISTINCT record_id FROM intermediate.int_identity__record_occurrences") == [
            "shopify_order:2"
        ]
        # The laptop stays Ben's identifier, in his own login.
        assert con.execute(
            "SELECT record_id, node FROM intermediate.int_identity__analytics_occurrences ORDER BY ALL"
        ).fetchall() == [
            ("mixpanel_login:laptop|102", "mixpanel_device:laptop"),
            ("mixpanel_login:laptop|102", "mixpanel_user:102"),
        ]


def test_his_checkouts_are_matched_as_checkouts_only(tmp_path):
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(warehouse)) as con:
        # Dan's gift to Ben: shipped to Ben's phone, but Dan's checkout.
        con.execute("ALTER TABLE raw_shopify.orders ADD COLUMN shipping_address__phone VARCHAR")
        con.execute("INSERT INTO raw_shopify.orders VALUES (4, 'dan@example.com', 'tok_d', 104, 'o4', '+15550002')")
        con.execute(
            "INSERT INTO raw_mixpanel.events VALUES "
            # Ben's own phone; the storefront spells his checkout's token in capitals.
            "('login', 'dev_ben', ?, NULL, 'e10'), ('checkout', 'dev_ben', NULL, 'TOK_B', 'e11'), "
            "('view', 'dev_ben', NULL, NULL, 'e12'), "
            # Dan's checkout of the gift, and a login whose user id happens to equal Ben's token.
            "('checkout', 'dev_dan', NULL, 'tok_d', 'e13'), ('login', 'dev_odd', 'tok_b', NULL, 'e14')",
            [BEN],
        )
        con.execute("CREATE TABLE raw_mixpanel.quarantine (resource VARCHAR, reason VARCHAR, record VARCHAR)")
        con.execute(
            "INSERT INTO raw_mixpanel.quarantine VALUES ('events', 'bad time', ?), ('events', 'bad time', ?)",
            [
                json.dumps({"event": "Checkout Started", "properties": {"checkout_id": "tok_b", "time": "x"}}),
                json.dumps({"event": "Note", "properties": {"text": "tok_b", "time": "x"}}),
            ],
        )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        ben = resolve(con, [], [BEN_BY_ID])
    assert ben.checkout_tokens == {"tok_b"}  # not Dan's gift
    assert "tok_b" not in ben.values  # a token is no person id
    assert "dev_ben" in ben.values  # his login and his checkout, whatever its case

    erase_requests(warehouse, _requests(warehouse)[1:2])

    with duckdb.connect(str(warehouse), read_only=True) as con:
        events = _rows(con, "SELECT _dlt_id FROM raw_mixpanel.events ORDER BY 1")
        quarantined = [json.loads(r)["event"] for r in _rows(con, "SELECT record FROM raw_mixpanel.quarantine")]
    assert not {"e8", "e10", "e11", "e12"} & set(events)
    assert {"e13", "e14"} <= set(events)
    assert quarantined == ["Note"]
    tombstone = read_tombstone(warehouse)
    assert checkout_key("tok_b") in tombstone and checkout_key("tok_d") not in tombstone
    # Only as a checkout: a person field holding the token's text is not dropped at load.
    assert identifier_hash("tok_b") not in tombstone


def test_quarantined_records_naming_the_person_by_id_or_device_go_and_others_stay(tmp_path):
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")

    def view(device: str) -> dict:
        return {"event": "view", "properties": {"distinct_id": f"$device:{device}", "$device_id": device}}

    anonymous_on_her_phone, on_the_family_laptop = view("dev_ana"), view("dev_home")
    her_login = {"event": "login", "properties": {"distinct_id": "101", "$user_id": "101", "time": "soon"}}
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE raw_mixpanel.quarantine (resource VARCHAR, reason VARCHAR, record VARCHAR)")
        for record in (anonymous_on_her_phone, her_login, on_the_family_laptop):
            con.execute("INSERT INTO raw_mixpanel.quarantine VALUES ('events', 'bad time', ?)", [json.dumps(record)])
        # A line cut off mid-record is no JSON, and still names her.
        con.execute(
            "INSERT INTO raw_mixpanel.quarantine VALUES ('events', 'not JSON', ?)",
            ['{"event": "add_to_cart", "properties": {"$user_id": "101", "$device_id": "dev_a'],
        )
    (ana,) = erase_requests(warehouse, _requests(warehouse)[:1]).requests
    assert ana.rows_deleted["raw_mixpanel.quarantine"] == 3
    with duckdb.connect(str(warehouse), read_only=True) as con:
        left = _rows(con, "SELECT record FROM raw_mixpanel.quarantine")
    assert [json.loads(r) for r in left] == [on_the_family_laptop]  # not hers alone


def test_an_address_inside_another_is_not_that_person(tmp_path):
    """`en@example.com` is a part of `ben@example.com`: neither an access request nor an erasure
    for it may take Ben's quarantined order or ledger rows."""
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA activation")
        con.execute("CREATE TABLE activation.sync_ledger (audience VARCHAR, email VARCHAR, payload JSON)")
        con.execute(
            "INSERT INTO activation.sync_ledger VALUES ('a', ?, ?), ('a', 'en@example.com.au', ?)",
            [BEN, json.dumps({"email": BEN}), json.dumps({"note": "write to en@example.com.au."})],
        )
        con.execute(
            "INSERT INTO activation.sync_ledger VALUES ('b', NULL, ?), ('c', NULL, ?), ('d', NULL, ?)",
            [
                json.dumps({"note": "Reply from en@example.com. Thanks"}),
                # JSON escapes a line break or a non-breaking space before the address (`\n`).
                json.dumps({"note": "Sent to:\nen@example.com", "cc": "\u00a0en@example.com"}),
                # O'En is someone else.
                json.dumps({"email": "o'en@example.com"}),
            ],
        )
    export = build_export(warehouse, "en@example.com")
    assert "raw_shopify.quarantine" not in export["tables"]
    assert [r["audience"] for r in export["tables"]["activation.sync_ledger"]] == ["b", "c"]
    (request,) = erase_requests(warehouse, [ErasureRequest("r_en", "en@example.com")]).requests
    assert request.rows_deleted == {"activation.sync_ledger": 2}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert _rows(con, "SELECT audience FROM activation.sync_ledger ORDER BY 1") == ["a", "a", "d"]
        assert len(_rows(con, "SELECT record FROM raw_shopify.quarantine")) == 2


def test_a_platform_whose_key_cannot_be_used_keeps_its_deletions_pending(tmp_path, monkeypatch):
    """A key with a line break inside is a setting to fix, not a platform the shop does not
    use: the warehouse is erased, and the platform's deletions wait for the fixed key."""
    from activation.privacy.destinations import available_destinations

    for name in list(os.environ):
        if name.startswith(("ACTIVATION__", "SOURCES__")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no secrets file
    monkeypatch.setenv("ACTIVATION__KLAVIYO__API_KEY", "pk_0123456789\nabcdefSECRET")
    destinations, unavailable = available_destinations()
    assert [d.name for d in destinations] == ["klaviyo"] and set(unavailable) == {"mailchimp"}

    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    (ana,) = erase_requests(warehouse, _requests(warehouse)[:1], destinations=destinations).requests
    assert ana.rows_deleted["raw_shopify.customers"] == 1
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (pending,) = con.execute(f"SELECT destination, email, error FROM {platform_retries.TABLE}").fetchall()
    assert pending[:2] == ("klaviyo", ANA)
    assert "ACTIVATION__KLAVIYO__API_KEY" in pending[2] and "SECRET" not in pending[2]
