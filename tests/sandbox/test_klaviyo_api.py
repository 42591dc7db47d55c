"""The sandbox's Klaviyo API against a live server: paging, filters, auth, rate limits, faults,
clock gating and the writes an audience push makes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from sandbox.server.vendors.klaviyo import windows

REVISION = "2025-10-15"


def headers(sandbox) -> dict[str, str]:
    key = _world(sandbox)["credentials"]["klaviyo"]["api_key"]
    return {"Authorization": f"Klaviyo-API-Key {key}", "revision": REVISION}


def _world(sandbox) -> dict[str, Any]:
    return json.loads((Path(sandbox.world) / "world.json").read_text())


def clock(sandbox) -> datetime:
    raw = sandbox.control("GET", "clock").json()["clock"]
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def api(sandbox, method: str, path: str, **kwargs) -> requests.Response:
    kwargs.setdefault("headers", headers(sandbox))
    return requests.request(method, f"{sandbox.vendor_url('klaviyo')}{path}", timeout=30, **kwargs)


def walk(sandbox, path: str, params: dict[str, str]) -> tuple[list[dict], int]:
    """Follow `links.next` from the first page; returns (all resources, number of pages)."""
    response = api(sandbox, "GET", path, params=params)
    items, pages = [], 0
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["data"]
        pages += 1
        next_url = body["links"]["next"]
        if not next_url:
            return items, pages
        assert next_url.startswith(f"{sandbox.vendor_url('klaviyo')}{path}/?")
        response = requests.get(next_url, headers=headers(sandbox), timeout=30)


def truth(sandbox, sql: str, **params) -> int:
    """A count over the world's store files (tables named after their files)."""
    store = Path(sandbox.world) / "store"
    con = duckdb.connect()
    for table in ("klaviyo_profiles", "klaviyo_events", "klaviyo_list_members", "klaviyo_campaigns"):
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{store / (table + '.parquet')}')")
    return int(con.execute(sql, params).fetchall()[0][0])


def error_of(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/vnd.api+json")
    (error,) = response.json()["errors"]
    assert {"id", "status", "code", "title", "detail", "source"} <= set(error)
    assert error["status"] == status and error["code"] == code
    return error


#: Klaviyo's rate-limit tiers, as the sandbox names its rules (`burst_<size>`, `steady_<size>`).
_SIZES = ("xs", "s", "m", "l", "xl")


@contextmanager
def limits(sandbox, rules: dict[str, dict[str, Any]]) -> Iterator[None]:
    """Override Klaviyo rate-limit rules, restoring the previous overrides afterwards (the
    shared server keeps limits across tests)."""
    before = sandbox.control("GET", "limits").json()["overrides"]
    sandbox.control("PUT", "limits", json={**before, "klaviyo": rules})
    try:
        yield
    finally:
        sandbox.control("PUT", "limits", json=before)


# --------------------------------------------------------------------------------------------
# paging and filters
# --------------------------------------------------------------------------------------------


def test_profiles_paging_walks_every_visible_profile_once(sandbox) -> None:
    profiles, pages = walk(sandbox, "/api/profiles", {"page[size]": "100"})
    ids = [p["id"] for p in profiles]
    expected = truth(sandbox, "SELECT count(*) FROM klaviyo_profiles WHERE created_at <= $c", c=clock(sandbox))
    assert len(ids) == len(set(ids)) == expected
    assert pages == -(-expected // 100)
    assert all(p["type"] == "profile" and p["links"]["self"].endswith(f"/api/profiles/{p['id']}/") for p in profiles)
    assert not any(k.startswith("_") for p in profiles for k in p["attributes"])


def test_prev_link_walks_back_to_the_first_page(sandbox) -> None:
    first = api(sandbox, "GET", "/api/profiles", params={"page[size]": "20", "sort": "-updated"}).json()
    assert first["links"]["prev"] is None
    second = requests.get(first["links"]["next"], headers=headers(sandbox), timeout=30).json()
    back = requests.get(second["links"]["prev"], headers=headers(sandbox), timeout=30).json()
    assert [p["id"] for p in back["data"]] == [p["id"] for p in first["data"]]
    stamps = [p["attributes"]["updated"] for p in first["data"] + second["data"]]
    assert stamps == sorted(stamps, reverse=True)


def _ids(sandbox, path: str, params: dict[str, str]) -> list[str]:
    return [item["id"] for item in walk(sandbox, path, params)[0]]


def _ids_backwards(sandbox, path: str, params: dict[str, str]) -> list[str]:
    """Ids from the last page back to the first by `links.prev`, put back in page order."""
    body = api(sandbox, "GET", path, params=params).json()
    while body["links"]["next"]:
        body = requests.get(body["links"]["next"], headers=headers(sandbox), timeout=30).json()
    pages = [[item["id"] for item in body["data"]]]
    while body["links"]["prev"]:
        body = requests.get(body["links"]["prev"], headers=headers(sandbox), timeout=30).json()
        pages.append([item["id"] for item in body["data"]])
    return [pid for page in reversed(pages) for pid in page]


def test_small_pages_agree_with_whole_reads_after_writes(private_sandbox, monkeypatch) -> None:
    """Pages of any size, walked forwards or backwards, give the rows in the order a whole
    read does, with API writes among them: a list member deleted at the end of a page and one
    removed at the start of the next, profiles moved in `updated` order by an update and a
    suppression, and an event written among the store's. Whether a page reads a window of
    sorted rows or the whole relation (`WHOLE_AFTER`) changes nothing. Rate limits are off: the
    walks make hundreds of requests, more than a minute of the steady window allows."""
    unlimited = {f"{window}_{size}": {"enabled": False} for window in ("burst", "steady") for size in _SIZES}
    with limits(private_sandbox, unlimited):
        _check_small_pages(private_sandbox, monkeypatch)


def _check_small_pages(sb, monkeypatch) -> None:
    newsletter = _world(sb)["ids"]["klaviyo_list_id"]
    members_path = f"/api/lists/{newsletter}/profiles"
    members = _ids(sb, members_path, {"page[size]": "100"})
    everyone = set(_ids(sb, "/api/profiles", {"page[size]": "100"}))
    deleted, removed = members[6], members[7]  # the last of the first page of 7, the first of the next
    job = {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": {"type": "profile", "id": deleted}}}}
    assert api(sb, "POST", "/api/data-privacy-deletion-jobs", json={"data": job}).status_code == 202
    gone = {"data": [{"type": "profile", "id": removed}]}
    assert api(sb, "DELETE", f"/api/lists/{newsletter}/relationships/profiles", json=gone).status_code == 204

    oldest = walk(sb, "/api/profiles", {"page[size]": "3", "sort": "updated"})[0][:3]
    changed = {"type": "profile", "attributes": {"email": oldest[0]["attributes"]["email"], "first_name": "Moved"}}
    assert api(sb, "POST", "/api/profile-import", json={"data": changed}).status_code == 200
    suppressed = {"type": "profile", "attributes": {"email": oldest[1]["attributes"]["email"]}}
    job = {"type": "profile-suppression-bulk-create-job", "attributes": {"profiles": {"data": [suppressed]}}}
    assert api(sb, "POST", "/api/profile-suppression-bulk-create-jobs", json={"data": job}).status_code == 202
    first_event = api(sb, "GET", "/api/events", params={"page[size]": "1", "sort": "datetime"}).json()["data"][0]
    written = {
        "properties": {"paging": True},
        "time": first_event["attributes"]["datetime"].replace(" ", "T"),
        "metric": {"data": {"type": "metric", "attributes": {"name": "Paging"}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": oldest[2]["attributes"]["email"]}}},
    }
    assert api(sb, "POST", "/api/events", json={"data": {"type": "event", "attributes": written}}).status_code == 202

    remaining = [pid for pid in members if pid not in (deleted, removed)]
    assert len(remaining) > 3 * 7
    by_joined = _ids(sb, members_path, {"page[size]": "100", "sort": "-joined_group_at"})
    assert sorted(by_joined) == sorted(remaining)
    profiles = walk(sb, "/api/profiles", {"page[size]": "100", "sort": "updated"})[0]
    assert [(p["attributes"]["updated"], p["id"]) for p in profiles] == sorted(
        (p["attributes"]["updated"], p["id"]) for p in profiles
    )
    by_updated = [p["id"] for p in profiles]
    assert set(by_updated) == everyone - {deleted}
    assert by_updated[-2:] == sorted([oldest[0]["id"], oldest[1]["id"]])  # changed at the clock
    for whole_after in (windows.WHOLE_AFTER, 0):
        monkeypatch.setattr(windows, "WHOLE_AFTER", whole_after)
        assert _ids(sb, members_path, {"page[size]": "7"}) == remaining
        assert _ids_backwards(sb, members_path, {"page[size]": "7"}) == remaining
        assert _ids(sb, members_path, {"page[size]": "6", "sort": "-joined_group_at"}) == by_joined
        assert _ids(sb, "/api/profiles", {"page[size]": "7", "sort": "updated"}) == by_updated
        assert _ids_backwards(sb, "/api/profiles", {"page[size]": "7", "sort": "updated"}) == by_updated

    start = int(datetime.fromisoformat(first_event["attributes"]["datetime"]).timestamp())
    window = {"filter": f"greater-or-equal(timestamp,{start}),less-than(timestamp,{start + 86400})"}
    events = api(sb, "GET", "/api/events", params={**window, "page[size]": "1000"}).json()
    assert events["links"]["next"] is None  # one whole page
    assert any(e["attributes"]["event_properties"] == {"paging": True} for e in events["data"])
    expected = [e["id"] for e in events["data"]]
    assert len(expected) > 3 * 7
    assert _ids(sb, "/api/events", {**window, "page[size]": "7"}) == expected
    assert _ids_backwards(sb, "/api/events", {**window, "page[size]": "7", "sort": "-timestamp"}) == expected[::-1]


def test_events_incremental_filter_matches_the_store(sandbox) -> None:
    now = clock(sandbox)
    since = (now - timedelta(days=10)).replace(microsecond=0)
    stamp = since.isoformat().replace("+00:00", "Z")
    events, _ = walk(
        sandbox, "/api/events", {"filter": f"greater-than(datetime,{stamp})", "sort": "datetime", "page[size]": "50"}
    )
    expected = truth(
        sandbox,
        "SELECT count(*) FROM klaviyo_events WHERE date_trunc('second', datetime) > $s AND datetime <= $c",
        s=since,
        c=now,
    )
    assert len(events) == len({e["id"] for e in events}) == expected > 0
    stamps = [e["attributes"]["datetime"] for e in events]
    assert stamps == sorted(stamps) and all(isinstance(e["attributes"]["timestamp"], int) for e in events)

    metric_id = _world(sandbox)["ids"]["metric_ids"]["Opened Email"]
    opened, _ = walk(
        sandbox,
        "/api/events",
        {"filter": f'and(equals(metric_id,"{metric_id}"),greater-than(datetime,{stamp}))', "page[size]": "100"},
    )
    assert {e["relationships"]["metric"]["data"]["id"] for e in opened} == {metric_id}
    assert len(opened) == truth(
        sandbox,
        "SELECT count(*) FROM klaviyo_events WHERE metric_id = $m AND date_trunc('second', datetime) > $s"
        " AND datetime <= $c",
        m=metric_id,
        s=since,
        c=now,
    )


def test_events_include_metric_and_profile(sandbox) -> None:
    body = api(sandbox, "GET", "/api/events", params={"include": "metric,profile", "page[size]": "5"}).json()
    included = {(r["type"], r["id"]) for r in body["included"]}
    for event in body["data"]:
        assert ("metric", event["relationships"]["metric"]["data"]["id"]) in included
        assert ("profile", event["relationships"]["profile"]["data"]["id"]) in included


def test_profiles_updated_filter_and_email_lookup(sandbox) -> None:
    now = clock(sandbox)
    since = (now - timedelta(days=7)).replace(microsecond=0)
    stamp = since.isoformat().replace("+00:00", "Z")
    recent, _ = walk(sandbox, "/api/profiles", {"filter": f"greater-than(updated,{stamp})", "sort": "updated"})
    gated = ", ".join(
        f"CASE WHEN {c} <= $c THEN {c} END"
        for c in ("subscribed_at", "unsubscribed_at", "bounced_at", "spam_complaint_at")
    )
    expected = truth(
        sandbox,
        f"SELECT count(*) FROM klaviyo_profiles WHERE created_at <= $c"
        f" AND date_trunc('second', greatest(created_at, {gated})) > $s",
        c=now,
        s=since,
    )
    assert len(recent) == expected > 0
    assert all(p["attributes"]["updated"] > since.isoformat() for p in recent)

    target = recent[0]["attributes"]["email"]
    found = api(sandbox, "GET", "/api/profiles", params={"filter": f'equals(email,"{target.upper()}")'}).json()
    assert [p["id"] for p in found["data"]] == [recent[0]["id"]]  # emails match case-insensitively


def test_sparse_fieldsets_and_any_filter(sandbox) -> None:
    two = api(sandbox, "GET", "/api/profiles", params={"page[size]": "2"}).json()["data"]
    emails = ",".join(f'"{p["attributes"]["email"]}"' for p in two)
    params = {"filter": f"any(email,[{emails}])", "fields[profile]": "email,location.city"}
    found = api(sandbox, "GET", "/api/profiles", params=params).json()["data"]
    assert sorted(p["id"] for p in found) == sorted(p["id"] for p in two)
    assert all(set(p["attributes"]) == {"email", "location"} for p in found)
    assert all(set(p["attributes"]["location"]) == {"city"} for p in found)


def test_subscriptions_report_consent_as_of_the_clock(sandbox) -> None:
    now = clock(sandbox)
    profiles, _ = walk(sandbox, "/api/profiles", {"additional-fields[profile]": "subscriptions", "page[size]": "100"})
    marketing = [p["attributes"]["subscriptions"]["email"]["marketing"] for p in profiles]
    subscribed = sum(m["consent"] == "SUBSCRIBED" for m in marketing)
    assert subscribed == truth(
        sandbox,
        "SELECT count(*) FROM klaviyo_profiles WHERE created_at <= $c AND subscribed_at <= $c"
        " AND (unsubscribed_at IS NULL OR unsubscribed_at > $c)",
        c=now,
    )
    suppressed = [m for m in marketing if m["suppression"]]
    assert all(not m["can_receive_email_marketing"] for m in suppressed)
    assert {s["reason"] for m in suppressed for s in m["suppression"]} <= {"HARD_BOUNCE", "SPAM_COMPLAINT"}
    plain = api(sandbox, "GET", "/api/profiles", params={"page[size]": "1"}).json()["data"][0]
    assert "subscriptions" not in plain["attributes"]


def test_lists_members_metrics_and_campaigns(sandbox) -> None:
    now = clock(sandbox)
    ids = _world(sandbox)["ids"]
    lists = api(sandbox, "GET", "/api/lists").json()["data"]
    assert ids["klaviyo_list_id"] in {item["id"] for item in lists}

    members, _ = walk(sandbox, f"/api/lists/{ids['klaviyo_list_id']}/relationships/profiles", {"page[size]": "100"})
    assert len(members) == truth(sandbox, "SELECT count(*) FROM klaviyo_list_members WHERE joined_at <= $c", c=now)
    # As Klaviyo's reference gives it: `page[size]` at most 100, sorted by join time only.
    ids_path = f"/api/lists/{ids['klaviyo_list_id']}/relationships/profiles"
    error = error_of(api(sandbox, "GET", ids_path, params={"page[size]": "1000"}), 400, "invalid")
    assert error["source"] == {"parameter": "page[size]"}
    error_of(api(sandbox, "GET", ids_path, params={"sort": "id"}), 400, "invalid")
    full = api(sandbox, "GET", f"/api/lists/{ids['klaviyo_list_id']}/profiles", params={"page[size]": "3"}).json()
    assert all("joined_group_at" in p["attributes"] for p in full["data"])

    metrics = api(sandbox, "GET", "/api/metrics").json()["data"]
    assert {m["attributes"]["name"]: m["id"] for m in metrics} == ids["metric_ids"]

    error = error_of(api(sandbox, "GET", "/api/campaigns"), 400, "invalid")
    assert error["source"] == {"parameter": "filter"}
    campaigns, _ = walk(sandbox, "/api/campaigns", {"filter": "equals(messages.channel,'email')"})
    assert len(campaigns) == truth(sandbox, "SELECT count(*) FROM klaviyo_campaigns WHERE send_time <= $c", c=now)
    assert all(c["attributes"]["send_time"] <= now.isoformat() for c in campaigns)


def test_bad_parameters_are_rejected_in_klaviyo_shape(sandbox) -> None:
    cases = [
        ({"filter": "greater-than(updated,'2024-01-01T00:00:00Z')"}, "filter"),  # datetimes are unquoted
        ({"filter": 'equals(nope,"x")'}, "filter"),
        ({"filter": 'less-than(email,"x")'}, "filter"),
        ({"filter": "equals(email,"}, "filter"),
        ({"sort": "first_name"}, "sort"),
        ({"page[size]": "101"}, "page[size]"),
        ({"page[cursor]": "not-a-cursor"}, "page[cursor]"),
    ]
    for params, parameter in cases:
        response = api(sandbox, "GET", "/api/profiles", params=params)
        error = error_of(response, 400, "invalid")
        assert error["source"] == {"parameter": parameter}, params
        assert "RateLimit-Remaining" in response.headers  # only 429s go without
    error_of(api(sandbox, "GET", "/api/profiles/01NOPE"), 404, "not_found")
    error_of(api(sandbox, "PUT", "/api/lists", json={}), 405, "method_not_allowed")


# --------------------------------------------------------------------------------------------
# auth and rate limits
# --------------------------------------------------------------------------------------------


def test_auth_rejections(sandbox) -> None:
    missing = api(sandbox, "GET", "/api/profiles", headers={"revision": REVISION})
    error = error_of(missing, 401, "not_authenticated")
    assert "Klaviyo-API-Key" in error["detail"]
    bearer = {"Authorization": "Bearer pk_sandbox_klaviyo_private_key", "revision": REVISION}
    error_of(api(sandbox, "GET", "/api/profiles", headers=bearer), 401, "not_authenticated")
    wrong = {"Authorization": "Klaviyo-API-Key pk_wrong", "revision": REVISION}
    error_of(api(sandbox, "GET", "/api/lists", headers=wrong), 401, "authentication_failed")
    no_revision = {"Authorization": headers(sandbox)["Authorization"]}
    error = error_of(api(sandbox, "GET", "/api/profiles", headers=no_revision), 400, "invalid")
    assert error["source"] == {"parameter": "revision"}


def test_burst_limit_429_and_headers(sandbox) -> None:
    with limits(sandbox, {"burst_l": {"limit": 2}}):
        responses = [api(sandbox, "GET", "/api/profiles", params={"page[size]": "1"}) for _ in range(3)]
        other = api(sandbox, "GET", "/api/lists")  # same tier, its own endpoint bucket
    ok, ok2, refused = responses
    assert ok.status_code == ok2.status_code == other.status_code == 200
    assert ok.headers["RateLimit-Limit"] == "700"  # headers describe the steady window
    assert int(ok.headers["RateLimit-Remaining"]) - int(ok2.headers["RateLimit-Remaining"]) == 1
    assert 0 <= int(ok.headers["RateLimit-Reset"]) <= 60
    error = error_of(refused, 429, "throttled")
    assert refused.headers["Retry-After"] == "1"
    assert "RateLimit-Limit" not in refused.headers
    assert error["detail"].startswith("Request was throttled.")
    assert sandbox.control("GET", "counters").json()["rate_limited"]["klaviyo"] >= 1


def test_steady_limit_429(sandbox) -> None:
    with limits(sandbox, {"steady_m": {"limit": 3}}):
        responses = [api(sandbox, "GET", "/api/metrics") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["RateLimit-Remaining"] for r in responses[:3]] == ["2", "1", "0"]
    assert responses[0].headers["RateLimit-Limit"] == "3"
    error_of(responses[3], 429, "throttled")
    assert 1 <= int(responses[3].headers["Retry-After"]) <= 60


# --------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------


def test_request_faults_in_klaviyo_shape(sandbox) -> None:
    sandbox.set_faults(rate_429=1.0, retry_after_seconds=3, vendors=["klaviyo"])
    refused = api(sandbox, "GET", "/api/profiles")
    error_of(refused, 429, "throttled")
    assert refused.headers["Retry-After"] == "3"

    sandbox.set_faults(rate_500=1.0, vendors=["klaviyo"])
    error_of(api(sandbox, "GET", "/api/profiles"), 500, "error")

    sandbox.set_faults(rate_slow=1.0, slow_seconds=0.4, vendors=["klaviyo"])
    started = time.monotonic()
    assert api(sandbox, "GET", "/api/metrics").status_code == 200
    assert time.monotonic() - started >= 0.4


def test_record_faults_in_klaviyo_shape(sandbox) -> None:
    params = {"page[size]": "20", "sort": "datetime"}
    sandbox.set_faults(rate_malformed=1.0, vendors=["klaviyo"])
    events = api(sandbox, "GET", "/api/events", params=params).json()["data"]
    assert all(e["id"] is None or e["attributes"]["datetime"] == "not-a-timestamp" for e in events)
    assert any(e["id"] is None for e in events) and any(e["id"] for e in events)

    sandbox.set_faults(rate_duplicate=1.0, vendors=["klaviyo"])
    first = api(sandbox, "GET", "/api/events", params=params).json()
    second = requests.get(first["links"]["next"], headers=headers(sandbox), timeout=30).json()
    assert [e["id"] for e in second["data"][:20]] == [e["id"] for e in first["data"]]

    sandbox.set_faults(drift="added_field", vendors=["klaviyo"])
    profile = api(sandbox, "GET", "/api/profiles", params={"page[size]": "1"}).json()["data"][0]
    assert profile["attributes"]["sandbox_added_field"] == "sandbox drift"

    sandbox.set_faults(drift="retyped_field", vendors=["klaviyo"])
    events = api(sandbox, "GET", "/api/events", params=params).json()["data"]
    assert all(isinstance(e["attributes"]["timestamp"], str) for e in events)


# --------------------------------------------------------------------------------------------
# clock and writes (private worlds)
# --------------------------------------------------------------------------------------------


def test_clock_advance_reveals_new_rows(private_sandbox) -> None:
    before_profiles, _ = walk(private_sandbox, "/api/profiles", {"page[size]": "100"})
    before_events, _ = walk(private_sandbox, "/api/events", {"page[size]": "1000"})
    private_sandbox.control("POST", "clock/advance", json={"days": 3})
    now = clock(private_sandbox)
    after_profiles, _ = walk(private_sandbox, "/api/profiles", {"page[size]": "100"})
    after_events, _ = walk(private_sandbox, "/api/events", {"page[size]": "1000"})
    assert len(after_events) == truth(
        private_sandbox, "SELECT count(*) FROM klaviyo_events WHERE datetime <= $c", c=now
    )
    assert len(after_events) > len(before_events)
    assert len(after_profiles) == truth(
        private_sandbox, "SELECT count(*) FROM klaviyo_profiles WHERE created_at <= $c", c=now
    )
    assert {p["id"] for p in before_profiles} <= {p["id"] for p in after_profiles}


def test_profile_import_creates_updates_and_validates(private_sandbox) -> None:
    sb = private_sandbox

    def imp(attributes: dict, **extra) -> requests.Response:
        return api(
            sb, "POST", "/api/profile-import", json={"data": {"type": "profile", "attributes": attributes, **extra}}
        )

    created = imp({"email": "cart.leaver@example.com", "properties": {"cart_value": 80.5}})
    assert created.status_code == 201
    pid = created.json()["data"]["id"]
    updated = imp({"email": "Cart.Leaver@example.com", "first_name": "Cara", "properties": {"gap": 0}})
    assert updated.status_code == 200 and updated.json()["data"]["id"] == pid
    assert updated.json()["data"]["attributes"]["properties"] == {"cart_value": 80.5, "gap": 0}
    # Matched by email in another case: the same identifier, so the stored address keeps its case.
    assert updated.json()["data"]["attributes"]["email"] == "cart.leaver@example.com"

    found = api(sb, "GET", "/api/profiles", params={"filter": 'equals(email,"cart.leaver@example.com")'}).json()
    assert [p["attributes"]["first_name"] for p in found["data"]] == ["Cara"]

    # An existing, subscribed store profile: updated in place, consent untouched.
    subscribed = next(
        p
        for p in walk(sb, "/api/profiles", {"additional-fields[profile]": "subscriptions", "page[size]": "100"})[0]
        if p["attributes"]["subscriptions"]["email"]["marketing"]["consent"] == "SUBSCRIBED"
    )
    again = imp({"email": subscribed["attributes"]["email"], "properties": {"abandoned_cart": True}})
    assert again.status_code == 200 and again.json()["data"]["id"] == subscribed["id"]
    after = api(sb, "GET", f"/api/profiles/{subscribed['id']}", params={"additional-fields[profile]": "subscriptions"})
    attributes = after.json()["data"]["attributes"]
    assert attributes["properties"]["abandoned_cart"] is True
    assert attributes["subscriptions"]["email"]["marketing"]["consent"] == "SUBSCRIBED"

    error = error_of(imp({"email": "not-an-email"}), 400, "invalid")
    assert error["source"] == {"pointer": "/data/attributes/email"}
    error = error_of(imp({"phone_number": "555-0100"}), 400, "invalid")
    assert error["source"] == {"pointer": "/data/attributes/phone_number"}
    error_of(imp({"first_name": "No identifier"}), 400, "invalid")
    wrong_type = api(sb, "POST", "/api/profile-import", json={"data": {"type": "list", "attributes": {}}})
    error_of(wrong_type, 409, "conflict")
    error_of(api(sb, "POST", "/api/profile-import", data=b"{not json"), 400, "parse_error")
    assert sb.control("GET", "counters").json()["writes"]["klaviyo"]["profile_import"] == 3


def test_list_create_and_membership(private_sandbox) -> None:
    sb = private_sandbox
    created = api(
        sb, "POST", "/api/lists", json={"data": {"type": "list", "attributes": {"name": "Abandoned checkout (24h)"}}}
    )
    assert created.status_code == 201
    list_id = created.json()["data"]["id"]
    names = {item["attributes"]["name"] for item in walk(sb, "/api/lists", {})[0]}
    assert "Abandoned checkout (24h)" in names

    profiles = api(sb, "GET", "/api/profiles", params={"page[size]": "3"}).json()["data"]
    refs = [{"type": "profile", "id": p["id"]} for p in profiles]
    path = f"/api/lists/{list_id}/relationships/profiles"
    assert api(sb, "POST", path, json={"data": refs}).status_code == 204
    assert api(sb, "POST", path, json={"data": refs[:1]}).status_code == 204  # already a member: no-op
    members = api(sb, "GET", path).json()["data"]
    assert sorted(m["id"] for m in members) == sorted(r["id"] for r in refs)
    joined = api(sb, "GET", f"/api/lists/{list_id}/profiles").json()["data"]
    assert {p["attributes"]["joined_group_at"] for p in joined} == {clock(sb).isoformat()}

    assert api(sb, "DELETE", path, json={"data": refs[:2]}).status_code == 204
    assert [m["id"] for m in api(sb, "GET", path).json()["data"]] == [refs[2]["id"]]

    too_many = [{"type": "profile", "id": f"01X{i:023d}"} for i in range(1001)]
    error_of(api(sb, "POST", path, json={"data": too_many}), 400, "invalid")
    error = error_of(api(sb, "POST", path, json={"data": [{"type": "profile", "id": "01NOPE"}]}), 400, "invalid")
    assert error["source"] == {"pointer": "/data/0/id"}
    error_of(api(sb, "POST", "/api/lists/nope/relationships/profiles", json={"data": refs}), 404, "not_found")
    error_of(api(sb, "POST", "/api/lists", json={"data": {"type": "list", "attributes": {}}}), 400, "invalid")

    # A store member removed through the API stays removed.
    newsletter = _world(sb)["ids"]["klaviyo_list_id"]
    store_path = f"/api/lists/{newsletter}/relationships/profiles"
    member = api(sb, "GET", store_path, params={"page[size]": "1"}).json()["data"][0]
    assert api(sb, "DELETE", store_path, json={"data": [member]}).status_code == 204
    remaining = {m["id"] for m in walk(sb, store_path, {"page[size]": "100"})[0]}
    assert member["id"] not in remaining
    writes = sb.control("GET", "counters").json()["writes"]["klaviyo"]
    assert writes["list_create"] == 1 and writes["list_add_profiles"] == 2 and writes["list_remove_profiles"] == 2


def test_bulk_import_job_reports_per_profile_errors(private_sandbox) -> None:
    sb = private_sandbox
    list_id = api(sb, "POST", "/api/lists", json={"data": {"type": "list", "attributes": {"name": "Bulk"}}}).json()[
        "data"
    ]["id"]
    job = {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {
                "profiles": {
                    "data": [
                        {
                            "type": "profile",
                            "attributes": {"email": "bulk.one@example.com", "properties": {"cart_value": 10}},
                        },
                        {"type": "profile", "attributes": {"email": "bad@"}},
                        {"type": "profile", "attributes": {"phone_number": "+14155550123"}},
                    ]
                }
            },
            "relationships": {"lists": {"data": [{"type": "list", "id": list_id}]}},
        }
    }
    posted = api(sb, "POST", "/api/profile-bulk-import-jobs", json=job)
    assert posted.status_code == 202
    data = posted.json()["data"]
    assert data["type"] == "profile-bulk-import-job" and data["attributes"]["status"] == "queued"
    polled = api(sb, "GET", f"/api/profile-bulk-import-jobs/{data['id']}").json()["data"]["attributes"]
    assert (polled["status"], polled["total_count"], polled["completed_count"], polled["failed_count"]) == (
        "complete",
        3,
        2,
        1,
    )
    (error,) = api(sb, "GET", f"/api/profile-bulk-import-jobs/{data['id']}/import-errors").json()["data"]
    assert error["attributes"]["source"]["pointer"] == "/data/attributes/email"
    assert error["attributes"]["original_payload"] == {"email": "bad@"}
    members = api(sb, "GET", f"/api/lists/{list_id}/relationships/profiles").json()["data"]
    assert len(members) == 2

    too_many = {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {
                "profiles": {
                    "data": [{"type": "profile", "attributes": {"email": f"p{i}@example.com"}} for i in range(10_001)]
                }
            },
        }
    }
    error_of(api(sb, "POST", "/api/profile-bulk-import-jobs", json=too_many), 400, "invalid")
    error_of(api(sb, "GET", "/api/profile-bulk-import-jobs/nope"), 404, "not_found")


def test_create_event_and_subscription_jobs_are_recorded(private_sandbox) -> None:
    sb = private_sandbox
    event = {
        "data": {
            "type": "event",
            "attributes": {
                "properties": {"checkout_id": "c-1", "cart_value": 80.5},
                "value": 80.5,
                "unique_id": "c-1",
                "metric": {"data": {"type": "metric", "attributes": {"name": "Abandoned checkout (Tessera)"}}},
                "profile": {"data": {"type": "profile", "attributes": {"email": "event.person@example.com"}}},
            },
        }
    }
    assert api(sb, "POST", "/api/events", json=event).status_code == 202
    assert api(sb, "POST", "/api/events", json=event).status_code == 202  # same unique_id: deduplicated
    metrics = api(sb, "GET", "/api/metrics", params={"filter": 'equals(integration.category,"API")'}).json()["data"]
    (metric,) = metrics
    assert metric["attributes"]["name"] == "Abandoned checkout (Tessera)"
    events = api(sb, "GET", "/api/events", params={"filter": f'equals(metric_id,"{metric["id"]}")'}).json()["data"]
    (created,) = events
    assert created["attributes"]["event_properties"]["$value"] == 80.5
    profile = api(sb, "GET", f"/api/profiles/{created['relationships']['profile']['data']['id']}").json()["data"]
    assert profile["attributes"]["email"] == "event.person@example.com"

    bad = {
        "data": {
            "type": "event",
            "attributes": {
                **event["data"]["attributes"],
                "profile": {"data": {"type": "profile", "attributes": {"email": "nope"}}},
            },
        }
    }
    error = error_of(api(sb, "POST", "/api/events", json=bad), 400, "invalid")
    assert error["source"] == {"pointer": "/data/attributes/profile/data/attributes/email"}

    subscribe = {
        "data": {
            "type": "profile-subscription-bulk-create-job",
            "attributes": {
                "profiles": {"data": [{"type": "profile", "attributes": {"email": "event.person@example.com"}}]}
            },
        }
    }
    assert api(sb, "POST", "/api/profile-subscription-bulk-create-jobs", json=subscribe).status_code == 202
    received = sb.control("GET", "received", params={"vendor": "klaviyo", "kind": "subscription_bulk_create_job"})
    assert received.json()["count"] == 1
    after = api(sb, "GET", f"/api/profiles/{profile['id']}", params={"additional-fields[profile]": "subscriptions"})
    assert after.json()["data"]["attributes"]["subscriptions"]["email"]["marketing"]["consent"] == "NEVER_SUBSCRIBED"


@pytest.mark.parametrize("path", ["/api/profiles", "/api/profiles/"])
def test_paths_work_with_and_without_trailing_slash(sandbox, path: str) -> None:
    assert api(sandbox, "GET", path, params={"page[size]": "1"}).status_code == 200
