"""The HubSpot sandbox over HTTP: paging, records, search, auth, rate limits, faults, clock.

Expected values come from the store read directly with DuckDB and the visibility rules
applied here, independently of the server.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import requests

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: type -> (store table, id column, change-timestamp columns besides created_at)
TYPES = {
    "contacts": ("hubspot_contacts", "contact_id", ("optout_at", "updated_at")),
    "companies": ("hubspot_companies", "company_id", ("updated_at",)),
    "deals": ("hubspot_deals", "deal_id", ("updated_at",)),
}
MODIFIED = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
LIMIT_HEADERS = (
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def ms(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(milliseconds=1)


def iso(epoch_ms: int) -> str:
    seconds = datetime.fromtimestamp(epoch_ms // 1000, UTC)
    return f"{seconds:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


def clock(sandbox) -> datetime:
    return datetime.fromisoformat(sandbox.control("GET", "clock").json()["clock"].replace("Z", "+00:00"))


def visible(world: Path, object_type: str, now: datetime) -> dict[int, dict]:
    """Store rows of a type that exist at `now`, by id, with `created_ms` and `modified_ms`
    (the latest change at or before `now`)."""
    table, id_col, changes = TYPES[object_type]
    single = world / "store" / f"{table}.parquet"
    path = single if single.is_file() else world / "store" / table / "*.parquet"
    cur = duckdb.connect().execute(f"SELECT * FROM read_parquet('{path}')")
    names = [d[0] for d in cur.description]
    out: dict[int, dict] = {}
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        if row["created_at"] <= now:
            stamps = [row["created_at"], *(row[c] for c in changes if row[c] is not None and row[c] <= now)]
            row["created_ms"], row["modified_ms"] = ms(row["created_at"]), ms(max(stamps))
            out[row[id_col]] = row
    return out


def headers(sandbox) -> dict[str, str]:
    meta = json.loads((sandbox.world / "world.json").read_text())
    return {"Authorization": f"Bearer {meta['credentials']['hubspot']['access_token']}"}


def url(sandbox, path: str) -> str:
    return f"{sandbox.vendor_url('hubspot')}/crm/v3/objects/{path}"


def get(sandbox, path: str, **params) -> requests.Response:
    return requests.get(url(sandbox, path), params=params, headers=headers(sandbox), timeout=30)


def search(sandbox, object_type: str, body: dict) -> requests.Response:
    target = url(sandbox, f"{object_type}/search")
    return requests.post(target, json=body, headers=headers(sandbox), timeout=30)


def walk_list(sandbox, object_type: str, **params) -> list[dict]:
    """Every record of a list, following `paging.next.link` as a loader does."""
    link: str | None = url(sandbox, object_type)
    query: dict | None = params
    records: list[dict] = []
    while link:
        r = requests.get(link, params=query, headers=headers(sandbox), timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        records += body["results"]
        nxt = body.get("paging", {}).get("next")
        if nxt:
            assert nxt["link"].startswith(sandbox.vendor_url("hubspot") + "/crm/v3/objects/")
            assert f"after={nxt['after']}" in nxt["link"]
        link, query = (nxt["link"], None) if nxt else (None, None)
    return records


def walk_search(sandbox, object_type: str, body: dict) -> tuple[list[dict], int]:
    """Every result of a search (offset paging through `after`) and the reported total."""
    records: list[dict] = []
    after: str | None = None
    while True:
        r = search(sandbox, object_type, {**body, **({"after": after} if after else {})})
        if r.status_code == 429:  # 5 searches per second: wait as told
            time.sleep(float(r.headers["Retry-After"]))
            continue
        assert r.status_code == 200, r.text
        page = r.json()
        records += page["results"]
        after = page.get("paging", {}).get("next", {}).get("after")
        if after is None:
            return records, page["total"]


def assert_error(r: requests.Response, status: int, category: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "error" and body["category"] == category and body["correlationId"]
    assert r.headers["X-HubSpot-Correlation-Id"] == body["correlationId"]
    return body


@pytest.fixture(autouse=True)
def fresh_limits(sandbox):
    """Full rate-limit budgets for every test (re-applying the overrides clears the limiters'
    state); the overrides are restored afterwards, whatever the test changed."""
    overrides = sandbox.control("GET", "limits").json()["overrides"]
    sandbox.control("PUT", "limits", json=overrides)
    yield overrides
    sandbox.control("PUT", "limits", json=overrides)


def set_limits(sandbox, overrides: dict, **rules: dict) -> None:
    merged = {**overrides, "hubspot": {**overrides.get("hubspot", {}), **rules}}
    sandbox.control("PUT", "limits", json=merged)


# --------------------------------------------------------------------------------------------
# listing and records
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("object_type", "limit"), [("contacts", 100), ("contacts", 7), ("companies", 100), ("deals", 3)]
)
def test_list_walks_every_visible_record_once(sandbox, object_type: str, limit: int) -> None:
    expected = visible(sandbox.world, object_type, clock(sandbox))
    records = walk_list(sandbox, object_type, limit=limit)
    ids = [int(r["id"]) for r in records]
    assert len(ids) == len(set(ids)) == len(expected) > 0
    assert set(ids) == set(expected)
    assert ids == sorted(ids)
    modified = MODIFIED[object_type]
    for record in records:
        row = expected[int(record["id"])]
        assert record["archived"] is False
        assert record["createdAt"] == record["properties"]["createdate"] == iso(row["created_ms"])
        assert record["updatedAt"] == record["properties"][modified] == iso(row["modified_ms"])
        assert record["properties"]["hs_object_id"] == record["id"]


def test_default_and_requested_properties(sandbox) -> None:
    now = clock(sandbox)
    expected = visible(sandbox.world, "contacts", now)
    first = get(sandbox, "contacts", limit=5).json()["results"][0]
    assert set(first["properties"]) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }
    wanted = [
        "email",
        "phone",
        "zip",
        "lifecyclestage",
        "membership_tier",
        "hs_email_optout",
        "associatedcompanyid",
    ]
    # Unknown names are ignored; the dates and id always come back.
    records = walk_list(sandbox, "contacts", limit=100, properties=",".join([*wanted, "no_such_property"]))
    for record in records:
        props, row = record["properties"], expected[int(record["id"])]
        assert set(props) == {*wanted, "createdate", "lastmodifieddate", "hs_object_id"}
        assert all(v is None or isinstance(v, str) for v in props.values())
        assert props["email"] == row["email"] and props["membership_tier"] == row["membership_tier"]
        assert props["associatedcompanyid"] == (str(row["company_id"]) if row["company_id"] else None)
        opted_out = row["optout_at"] is not None and row["optout_at"] <= now
        assert props["hs_email_optout"] == ("true" if opted_out else "false")
    assert "_person_id" not in json.dumps(records)
    deal = get(sandbox, "deals", limit=1).json()["results"][0]["properties"]
    assert set(deal) >= {"amount", "closedate", "dealname", "dealstage", "pipeline", "hs_lastmodifieddate"}
    assert float(deal["amount"]) > 0 and deal["closedate"].endswith("Z")


def test_single_record_associations_and_404(sandbox) -> None:
    now = clock(sandbox)
    contacts = visible(sandbox.world, "contacts", now)
    with_company = next(row for row in contacts.values() if row["company_id"])
    r = get(sandbox, f"contacts/{with_company['contact_id']}", associations="companies", properties="email")
    assert r.status_code == 200
    assert r.headers["X-HubSpot-RateLimit-Max"]
    body = r.json()
    assert body["id"] == str(with_company["contact_id"])
    assert body["properties"]["email"] == with_company["email"]
    assert body["associations"]["companies"]["results"] == [
        {"id": str(with_company["company_id"]), "type": "contact_to_company"},
        {"id": str(with_company["company_id"]), "type": "contact_to_company_unlabeled"},
    ]
    # Lists carry the same block; records without a company have none.
    listed = {r["id"]: r for r in walk_list(sandbox, "contacts", limit=100, associations="companies")}
    assert listed[body["id"]]["associations"] == body["associations"]
    with_any = sum(1 for c in contacts.values() if c["company_id"])
    assert sum("associations" in r for r in listed.values()) == with_any

    future = visible(sandbox.world, "contacts", now + timedelta(days=365)).keys() - contacts.keys()
    for missing in (str(min(future)), "not-a-number"):
        err = assert_error(get(sandbox, f"contacts/{missing}"), 404, "OBJECT_NOT_FOUND")
        assert err["context"] == {"id": [missing]}
        assert err["message"] == "Object not found.  objectId are usually numeric."


def batch_read(sandbox, source: str, target: str, ids: list[str]) -> requests.Response:
    target_url = f"{sandbox.vendor_url('hubspot')}/crm/v3/associations/{source}/{target}/batch/read"
    return requests.post(target_url, json={"inputs": [{"id": i} for i in ids]}, headers=headers(sandbox), timeout=30)


def test_associations_batch_read_matches_the_records_and_names_the_ones_without(sandbox) -> None:
    contacts = visible(sandbox.world, "contacts", clock(sandbox))
    linked = [str(c["contact_id"]) for c in contacts.values() if c["company_id"]][:5]
    alone = [str(c["contact_id"]) for c in contacts.values() if not c["company_id"]][:2]
    r = batch_read(sandbox, "contacts", "company", linked + alone + ["not-a-number"])
    assert r.status_code == 207 and r.headers["X-HubSpot-RateLimit-Max"]
    body = r.json()
    assert body["status"] == "COMPLETE"
    # Each record's links are what a GET of the record lists.
    for result in body["results"]:
        record = get(sandbox, f"contacts/{result['from']['id']}", associations="companies").json()
        assert result["to"] == record["associations"]["companies"]["results"]
    assert sorted(result["from"]["id"] for result in body["results"]) == sorted(linked)
    assert body["numErrors"] == len(body["errors"]) == 3
    assert {e["subCategory"] for e in body["errors"]} == {"crm.associations.NO_ASSOCIATIONS_FOUND"}
    assert body["errors"][0]["message"] == f"No company is associated with contact {alone[0]}."
    assert batch_read(sandbox, "contacts", "companies", linked).status_code == 200

    assert_error(batch_read(sandbox, "contacts", "companies", ["1"] * 1001), 400, "VALIDATION_ERROR")
    assert_error(batch_read(sandbox, "contacts", "tickets", linked), 400, "VALIDATION_ERROR")


def test_unknown_object_type_is_a_400(sandbox) -> None:
    assert_error(get(sandbox, "tickets"), 400, "VALIDATION_ERROR")


# --------------------------------------------------------------------------------------------
# auth
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "Basic cGF0Og==", "Bearer"])
def test_auth_rejected_in_hubspot_shape(sandbox, auth: str | None) -> None:
    sent = {"Authorization": auth} if auth else {}
    for r in (
        requests.get(url(sandbox, "contacts"), headers=sent, timeout=30),
        requests.get(url(sandbox, "contacts/1"), headers=sent, timeout=30),
        requests.post(url(sandbox, "contacts/search"), json={}, headers=sent, timeout=30),
    ):
        body = assert_error(r, 401, "INVALID_AUTHENTICATION")
        assert body["message"] == AUTH_MESSAGE
        assert not any(h in r.headers for h in LIMIT_HEADERS)


# --------------------------------------------------------------------------------------------
# search
# --------------------------------------------------------------------------------------------


def test_search_by_last_modified_pages_in_order(sandbox) -> None:
    now = clock(sandbox)
    contacts = visible(sandbox.world, "contacts", now)
    bound = sorted(r["modified_ms"] for r in contacts.values())[len(contacts) // 3]
    expected = {i for i, r in contacts.items() if r["modified_ms"] >= bound}
    sort = [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]

    def gte(value: str) -> dict:
        flt = {"propertyName": "lastmodifieddate", "operator": "GTE", "value": value}
        return {"filterGroups": [{"filters": [flt]}], "sorts": sort, "limit": 25, "properties": ["email"]}

    records, total = walk_search(sandbox, "contacts", gte(str(bound)))
    assert total == len(records) == len(expected)
    assert {int(r["id"]) for r in records} == expected
    stamps = [r["properties"]["lastmodifieddate"] for r in records]
    assert stamps == sorted(stamps) and stamps[0] >= iso(bound)
    assert set(records[0]["properties"]) == {"email", "createdate", "lastmodifieddate", "hs_object_id"}
    assert "associations" not in records[0]
    # The same bound as ISO-8601 selects the same records; LT selects the complement.
    assert walk_search(sandbox, "contacts", gte(iso(bound)))[1] == total
    below = {"propertyName": "lastmodifieddate", "operator": "LT", "value": str(bound)}
    lt = {"filterGroups": [{"filters": [below]}]}
    assert walk_search(sandbox, "contacts", lt)[1] == len(contacts) - total


def test_search_filters_groups_and_sorts(sandbox) -> None:
    contacts = visible(sandbox.world, "contacts", clock(sandbox))
    some = sorted(contacts)[:3]
    by_id = {
        "filterGroups": [
            {"filters": [{"propertyName": "hs_object_id", "operator": "IN", "values": [str(i) for i in some]}]}
        ]
    }
    records, total = walk_search(sandbox, "contacts", by_id)
    assert total == 3 and [int(r["id"]) for r in records] == some
    # Groups are ORed, filters in a group ANDed; string equality ignores case.
    email = contacts[some[0]]["email"]
    tiers = {"propertyName": "membership_tier", "operator": "EQ", "value": "GOLD"}
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "email", "operator": "EQ", "value": email.upper()}]},
            {"filters": [tiers, {"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}]},
        ],
        "sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}],
        "limit": 200,
    }
    expected = {
        i
        for i, r in contacts.items()
        if r["email"].lower() == email.lower() or (r["membership_tier"] == "gold" and r["lifecyclestage"] == "customer")
    }
    records, total = walk_search(sandbox, "contacts", body)
    assert {int(r["id"]) for r in records} == expected and total == len(expected)
    created = [r["properties"]["createdate"] for r in records]
    assert created == sorted(created, reverse=True)
    deals = visible(sandbox.world, "deals", clock(sandbox))
    large = {"propertyName": "amount", "operator": "GT", "value": "1000"}
    large_deals = sum(1 for d in deals.values() if d["amount"] > 1000)
    assert walk_search(sandbox, "deals", {"filterGroups": [{"filters": [large]}]})[1] == large_deals


def test_search_window_and_validation(sandbox, fresh_limits) -> None:
    set_limits(sandbox, fresh_limits, search={"limit": 50})
    # HubSpot serves no result past the 10,000th: paging there is a 400.
    err = assert_error(search(sandbox, "contacts", {"after": "10000"}), 400, "VALIDATION_ERROR")
    assert err["message"] == "There was a problem with the request."
    assert search(sandbox, "contacts", {"after": "9999"}).json()["results"] == []
    bad = [
        {"limit": 201},
        {"filterGroups": [{"filters": [{"propertyName": "no_such", "operator": "EQ", "value": "x"}]}]},
        {"filterGroups": [{"filters": [{"propertyName": "createdate", "operator": "GT", "value": "soon"}]}]},
        {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "a"}]}] * 6},
        {"sorts": [{"propertyName": "email"}, {"propertyName": "createdate"}]},
    ]
    for body in bad:
        assert_error(search(sandbox, "contacts", body), 400, "VALIDATION_ERROR")


# --------------------------------------------------------------------------------------------
# rate limits
# --------------------------------------------------------------------------------------------


def test_burst_limit_headers_and_429(sandbox, fresh_limits) -> None:
    set_limits(sandbox, fresh_limits, burst={"limit": 3})
    remaining = []
    for _ in range(3):
        r = get(sandbox, "companies", limit=1)
        assert r.status_code == 200
        assert r.headers["X-HubSpot-RateLimit-Max"] == "3"
        assert r.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        remaining.append(int(r.headers["X-HubSpot-RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]
    r = get(sandbox, "contacts")
    assert r.status_code == 429
    assert r.json() == {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": r.json()["correlationId"],
        "policyName": "TEN_SECONDLY_ROLLING",
    }
    assert 1 <= int(r.headers["Retry-After"]) <= 10
    assert r.headers["X-HubSpot-RateLimit-Remaining"] == "0" and r.headers["X-HubSpot-RateLimit-Max"] == "3"
    assert sandbox.control("GET", "counters").json()["rate_limited"]["hubspot"] == 1


def test_search_has_its_own_secondly_limit(sandbox, fresh_limits) -> None:
    # Search is exempt from the ten-secondly limit: a spent burst budget does not stop it.
    set_limits(sandbox, fresh_limits, burst={"limit": 1}, search={"limit": 2})
    assert get(sandbox, "contacts").status_code == 200
    assert get(sandbox, "contacts").status_code == 429
    for _ in range(2):
        r = search(sandbox, "contacts", {})
        assert r.status_code == 200
        assert not any(h in r.headers for h in LIMIT_HEADERS)  # HubSpot sends none on search
    r = search(sandbox, "contacts", {})
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    body = r.json()
    assert (body["message"], body["errorType"], body["policyName"]) == (
        "You have reached your secondly limit.",
        "RATE_LIMIT",
        "SECONDLY",
    )


# --------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------


def test_injected_429_500_and_slow(sandbox) -> None:
    sandbox.set_faults(rate_429=1.0, retry_after_seconds=3, vendors=["hubspot"])
    r = get(sandbox, "contacts")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.json()["policyName"] == "TEN_SECONDLY_ROLLING" and r.json()["errorType"] == "RATE_LIMIT"
    sandbox.set_faults(rate_500=1.0, vendors=["hubspot"])
    r = search(sandbox, "contacts", {})
    assert r.status_code == 500
    assert set(r.json()) == {"status", "message", "correlationId"} and r.json()["message"] == "internal error"
    sandbox.set_faults(rate_slow=1.0, slow_seconds=0.4, vendors=["hubspot"])
    started = time.monotonic()
    assert get(sandbox, "companies", limit=1).status_code == 200
    assert time.monotonic() - started >= 0.4
    faults = sandbox.control("GET", "counters").json()["faults"]["hubspot"]
    assert faults["429"] == 1 and faults["500"] == 1 and faults["slow"] == 1


def test_malformed_and_duplicate_records(sandbox) -> None:
    sandbox.set_faults(rate_malformed=1.0, vendors=["hubspot"])
    for page in (
        get(sandbox, "contacts", limit=20).json()["results"],
        search(sandbox, "contacts", {"limit": 20}).json()["results"],
    ):
        assert page and all(r["updatedAt"] == "not-a-timestamp" or r["id"] is None for r in page)
    sandbox.set_faults(rate_duplicate=1.0, vendors=["hubspot"])
    first = get(sandbox, "contacts", limit=10).json()
    second = requests.get(first["paging"]["next"]["link"], headers=headers(sandbox), timeout=30).json()
    assert [r["id"] for r in second["results"][:10]] == [r["id"] for r in first["results"]]
    assert len(second["results"]) == 20


@pytest.mark.parametrize("drift", ["added_field", "retyped_field"])
def test_schema_drift(sandbox, drift: str) -> None:
    sandbox.set_faults(drift=drift, vendors=["hubspot"])
    for page in (
        get(sandbox, "deals", limit=5).json()["results"],
        search(sandbox, "deals", {"limit": 5}).json()["results"],
    ):
        assert page
        for record in page:
            if drift == "added_field":
                assert record["sandbox_added_field"] == "sandbox drift"
            else:
                assert record["properties"]["hs_object_id"] == int(record["id"])


# --------------------------------------------------------------------------------------------
# clock
# --------------------------------------------------------------------------------------------


def test_clock_advance_reveals_new_records(private_sandbox) -> None:
    sandbox = private_sandbox
    before = clock(sandbox)
    seen = {int(r["id"]) for r in walk_list(sandbox, "contacts", limit=100)}
    assert seen == set(visible(sandbox.world, "contacts", before))
    sandbox.control("POST", "clock/advance", json={"days": 2})
    after = clock(sandbox)
    expected = visible(sandbox.world, "contacts", after)
    now_seen = {int(r["id"]) for r in walk_list(sandbox, "contacts", limit=100)}
    assert now_seen == set(expected) and len(now_seen) > len(seen)
    # An incremental search from the old clock finds exactly what was created or changed since.
    flt = {"propertyName": "lastmodifieddate", "operator": "GT", "value": str(ms(before))}
    records, total = walk_search(sandbox, "contacts", {"filterGroups": [{"filters": [flt]}], "limit": 200})
    changed = {i for i, r in expected.items() if r["modified_ms"] > ms(before)}
    assert {int(r["id"]) for r in records} == changed
    assert total >= len(now_seen - seen)  # new contacts, and older ones modified meanwhile
