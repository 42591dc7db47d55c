"""The Mailchimp sandbox over HTTP: auth, paging, filters, reports, writes and their consent
rules, the simultaneous-connection limit, faults and the clock.

Expected values come from the store read directly with DuckDB and the visibility rules applied
here (a member exists once `created_at` <= clock; its status is the latest of its status
events at or before the clock), independently of the server.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime

import duckdb
import pytest
import requests

ERROR_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
HIDDEN = "_person_id"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


def stamp(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def meta(sandbox) -> dict:
    return json.loads((sandbox.world / "world.json").read_text())


def api_key(sandbox) -> str:
    return meta(sandbox)["credentials"]["mailchimp"]["api_key"]


def list_id(sandbox) -> str:
    return meta(sandbox)["ids"]["mailchimp_list_id"]


def clock(sandbox) -> datetime:
    return datetime.fromisoformat(sandbox.control("GET", "clock").json()["clock"].replace("Z", "+00:00"))


def call(sandbox, method: str, path: str, *, auth: object = "key", **kwargs) -> requests.Response:
    """A request to `/mailchimp/3.0<path>`, with Basic auth (any user, the key as password) by
    default, as the official SDK sends it."""
    basic = ("tessera", api_key(sandbox)) if auth == "key" else auth
    return requests.request(method, f"{sandbox.vendor_url('mailchimp')}/3.0{path}", auth=basic, timeout=30, **kwargs)


def members_path(sandbox) -> str:
    return f"/lists/{list_id(sandbox)}/members"


def walk_members(sandbox, count: int, **params) -> tuple[list[dict], set[int]]:
    """Every page of the member listing; returns the members and the totals seen."""
    members, totals, offset = [], set(), 0
    while True:
        body = call(sandbox, "GET", members_path(sandbox), params={"count": count, "offset": offset, **params}).json()
        members += body["members"]
        totals.add(body["total_items"])
        offset += count
        if offset >= body["total_items"]:
            return members, totals


def store(sandbox, table: str) -> list[dict]:
    cur = duckdb.connect().execute(f"SELECT * FROM read_parquet('{sandbox.world / 'store' / table}.parquet')")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def expected_members(sandbox, now: datetime) -> dict[str, dict]:
    """Members visible at `now` by subscriber hash, with `status` and `last_changed` (ISO)."""
    out = {}
    for row in store(sandbox, "mailchimp_members"):
        if row["list_id"] != list_id(sandbox) or row["created_at"] > now:
            continue
        events = [
            (t.replace(microsecond=0), status)
            for t, status in (
                (row["subscribed_at"], "subscribed"),
                (row["unsubscribed_at"], "unsubscribed"),
                (row["cleaned_at"], "cleaned"),
            )
            if t is not None and t <= now
        ]
        row["status"] = max(events)[1]
        row["last_changed"] = stamp(max([row["created_at"].replace(microsecond=0), *(t for t, _ in events)]))
        out[md5(row["email_address"])] = row
    return out


def assert_problem(r: requests.Response, status: int, title: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == ERROR_TYPE and body["title"] == title and body["status"] == status
    assert body["detail"] and body["instance"]
    return body


@pytest.fixture(autouse=True)
def fresh_limits(sandbox):
    """Full connection budgets for every test; the overrides are restored afterwards."""
    overrides = sandbox.control("GET", "limits").json()["overrides"]
    sandbox.control("PUT", "limits", json=overrides)
    yield overrides
    sandbox.control("PUT", "limits", json=overrides)


# --------------------------------------------------------------------------------------------
# auth, root
# --------------------------------------------------------------------------------------------


def test_ping_and_api_root(sandbox) -> None:
    assert call(sandbox, "GET", "/ping").json() == {"health_status": "Everything's Chimpy!"}
    root = call(sandbox, "GET", "/").json()
    assert root["account_id"] and root["total_subscribers"] > 0
    assert root["_links"][0]["href"] == f"{sandbox.vendor_url('mailchimp')}/3.0/"


@pytest.mark.parametrize(
    ("auth", "title"),
    [
        (None, "API Key Missing"),
        (("tessera", "0" * 32 + "-us21"), "API Key Invalid"),
        (("x", ""), "API Key Missing"),
    ],
)
def test_auth_rejected_in_mailchimp_shape(sandbox, auth, title: str) -> None:
    assert_problem(call(sandbox, "GET", members_path(sandbox), auth=auth), 401, title)


def test_other_accepted_auth_schemes(sandbox) -> None:
    for scheme in ("apikey", "Bearer"):
        headers = {"Authorization": f"{scheme} {api_key(sandbox)}"}
        assert call(sandbox, "GET", "/ping", auth=None, headers=headers).status_code == 200
    assert_problem(
        call(sandbox, "GET", "/ping", auth=None, headers={"Authorization": "apikey nope-us21"}),
        401,
        "API Key Invalid",
    )


# --------------------------------------------------------------------------------------------
# members
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [7, 1000])
def test_member_paging_walks_every_visible_member_once(sandbox, count: int) -> None:
    expected = expected_members(sandbox, clock(sandbox))
    members, totals = walk_members(sandbox, count)
    assert totals == {len(expected)}
    assert sorted(m["id"] for m in members) == sorted(expected)
    assert {m["id"]: m["status"] for m in members} == {h: r["status"] for h, r in expected.items()}
    assert {m["id"]: m["last_changed"] for m in members} == {h: r["last_changed"] for h, r in expected.items()}
    assert not any(k.startswith("_") and k != "_links" for m in members for k in m)


def test_count_defaults_to_10_and_caps_at_1000(sandbox) -> None:
    assert len(call(sandbox, "GET", members_path(sandbox)).json()["members"]) == 10
    body = call(sandbox, "GET", members_path(sandbox), params={"count": 5000}).json()
    assert len(body["members"]) == min(1000, body["total_items"])


def test_single_member_fields_and_404(sandbox) -> None:
    expected = expected_members(sandbox, clock(sandbox))
    hash_, row = next(iter(expected.items()))
    member = call(sandbox, "GET", f"{members_path(sandbox)}/{hash_}").json()
    assert member["email_address"] == row["email_address"] and member["unique_email_id"] == row["unique_email_id"]
    assert member["web_id"] == row["web_id"] and member["list_id"] == list_id(sandbox)
    assert member["merge_fields"]["FNAME"] == row["first_name"] and member["merge_fields"]["LNAME"] == row["last_name"]
    assert member["merge_fields"]["ADDRESS"]["city"] == json.loads(row["address"])["city"]
    assert [t["name"] for t in member["tags"]] == json.loads(row["tags"]) and member["tags_count"] == len(
        member["tags"]
    )
    assert member["timestamp_opt"] == stamp(row["subscribed_at"]) and member["ip_signup"] == row["ip_signup"]
    assert 0 <= member["stats"]["avg_open_rate"] <= 1
    # The address itself is accepted in place of the hash.
    assert call(sandbox, "GET", f"{members_path(sandbox)}/{row['email_address']}").json()["id"] == hash_
    assert_problem(call(sandbox, "GET", f"{members_path(sandbox)}/{'0' * 32}"), 404, "Resource Not Found")
    assert_problem(call(sandbox, "GET", "/lists/nolist/members"), 404, "Resource Not Found")


def test_status_and_last_changed_filters(sandbox) -> None:
    now = clock(sandbox)
    expected = expected_members(sandbox, now)
    for status in ("subscribed", "unsubscribed", "cleaned"):
        members, _ = walk_members(sandbox, 1000, status=status)
        assert {m["id"] for m in members} == {h for h, r in expected.items() if r["status"] == status}
    cut = sorted(r["last_changed"] for r in expected.values())[len(expected) // 2]
    since, _ = walk_members(sandbox, 50, since_last_changed=cut)
    before, _ = walk_members(sandbox, 50, before_last_changed=cut)
    assert {m["id"] for m in since} == {h for h, r in expected.items() if r["last_changed"] >= cut}
    assert {m["id"] for m in before} == {h for h, r in expected.items() if r["last_changed"] < cut}
    assert_problem(call(sandbox, "GET", members_path(sandbox), params={"status": "gone"}), 400, "Invalid Resource")
    assert_problem(
        call(sandbox, "GET", members_path(sandbox), params={"since_last_changed": "yesterday"}),
        400,
        "Invalid Resource",
    )


def test_fields_and_exclude_fields(sandbox) -> None:
    body = call(
        sandbox,
        "GET",
        members_path(sandbox),
        params={"count": 3, "fields": "members.email_address,members.status,total_items"},
    ).json()
    assert set(body) == {"members", "total_items"} and all(
        set(m) == {"email_address", "status"} for m in body["members"]
    )
    body = call(
        sandbox,
        "GET",
        members_path(sandbox),
        params={"count": 1, "exclude_fields": "members.merge_fields,_links"},
    ).json()
    assert "_links" not in body and "merge_fields" not in body["members"][0] and "email_address" in body["members"][0]


def test_member_activity_feed_and_activity(sandbox) -> None:
    now = clock(sandbox)
    rows = [r for r in store(sandbox, "mailchimp_activity") if r["timestamp"] <= now]
    email = max({r["email_address"] for r in rows}, key=lambda e: sum(r["email_address"] == e for r in rows))
    mine = [r for r in rows if r["email_address"] == email]
    path = f"{members_path(sandbox)}/{md5(email)}"
    feed = call(sandbox, "GET", f"{path}/activity-feed", params={"count": 1000}).json()
    assert feed["total_items"] == len(mine) and feed["email_id"] == md5(email)
    stamps = [a["created_at_timestamp"] for a in feed["activity"]]
    assert stamps == sorted(stamps, reverse=True)
    opens = call(sandbox, "GET", f"{path}/activity-feed", params={"activity_filters": "open"}).json()
    assert opens["total_items"] == sum(r["action"] == "open" for r in mine)
    legacy = call(sandbox, "GET", f"{path}/activity").json()
    assert sorted(a["action"] for a in legacy["activity"]) == sorted(r["action"] for r in mine)


# --------------------------------------------------------------------------------------------
# lists, campaigns, reports
# --------------------------------------------------------------------------------------------


def test_lists_and_list_stats(sandbox) -> None:
    expected = expected_members(sandbox, clock(sandbox))
    body = call(sandbox, "GET", "/lists").json()
    assert body["total_items"] == 1 and body["lists"][0]["id"] == list_id(sandbox)
    stats = call(sandbox, "GET", f"/lists/{list_id(sandbox)}").json()["stats"]
    assert stats["member_count"] == sum(r["status"] == "subscribed" for r in expected.values())
    assert stats["unsubscribe_count"] == sum(r["status"] == "unsubscribed" for r in expected.values())


def test_campaigns_gated_by_send_time_and_filtered(sandbox) -> None:
    now = clock(sandbox)
    sent = sorted(
        (c for c in store(sandbox, "mailchimp_campaigns") if c["send_time"] <= now),
        key=lambda c: c["send_time"],
    )
    body = call(sandbox, "GET", "/campaigns", params={"count": 1000}).json()
    assert body["total_items"] == len(sent) > 0
    assert {c["id"] for c in body["campaigns"]} == {c["campaign_id"] for c in sent}
    last = sent[-1]
    since = call(sandbox, "GET", "/campaigns", params={"since_send_time": stamp(last["send_time"])}).json()
    assert [c["id"] for c in since["campaigns"]] == [last["campaign_id"]]
    campaign = call(sandbox, "GET", f"/campaigns/{last['campaign_id']}").json()
    recipients = [
        r
        for r in store(sandbox, "mailchimp_activity")
        if r["campaign_id"] == last["campaign_id"] and r["action"] == "sent"
    ]
    assert campaign["emails_sent"] == len(recipients) and campaign["settings"]["subject_line"] == last["subject_line"]


def test_email_activity_report(sandbox) -> None:
    now = clock(sandbox)
    campaign = min(
        (c for c in store(sandbox, "mailchimp_campaigns") if c["send_time"] <= now),
        key=lambda c: c["send_time"],
    )
    cid = campaign["campaign_id"]
    rows = [r for r in store(sandbox, "mailchimp_activity") if r["campaign_id"] == cid and r["timestamp"] <= now]
    emails, offset = [], 0
    while True:
        body = call(sandbox, "GET", f"/reports/{cid}/email-activity", params={"count": 9, "offset": offset}).json()
        emails += body["emails"]
        offset += 9
        if offset >= body["total_items"]:
            break
    assert sorted(e["email_id"] for e in emails) == sorted(
        md5(r["email_address"]) for r in rows if r["action"] == "sent"
    )
    actions = sorted(a["action"] for e in emails for a in e["activity"])
    assert actions == sorted(r["action"] for r in rows if r["action"] in ("open", "click", "bounce"))
    cut = sorted(r["timestamp"] for r in rows if r["action"] == "open")[1]
    since = call(sandbox, "GET", f"/reports/{cid}/email-activity", params={"since": stamp(cut), "count": 1000}).json()
    later = [
        r
        for r in rows
        if r["action"] in ("open", "click") and r["timestamp"].replace(microsecond=0) >= cut.replace(microsecond=0)
    ]
    assert since["total_items"] == len({r["email_address"] for r in later})
    assert sum(len(e["activity"]) for e in since["emails"]) == len(later)
    assert_problem(call(sandbox, "GET", "/reports/nope/email-activity"), 404, "Resource Not Found")


# --------------------------------------------------------------------------------------------
# rate limit and faults
# --------------------------------------------------------------------------------------------


def test_simultaneous_connections_over_the_limit_get_429(sandbox, fresh_limits) -> None:
    """Two requests in flight (held here through the server's own limiter, so the test does not
    depend on timing) fill a lowered limit of 2; a third connection is refused."""
    sandbox.control("PUT", "limits", json={**fresh_limits, "mailchimp": {"connections": {"limit": 2}}})
    limits = sandbox.app.state.sandbox.limits
    with (
        limits.slot("mailchimp", "connections", api_key(sandbox)),
        limits.slot("mailchimp", "connections", api_key(sandbox)),
    ):
        r = call(sandbox, "GET", "/ping")
        body = assert_problem(r, 429, "Too Many Requests")
        assert body["detail"] == "You have exceeded the limit of 2 simultaneous connections."
        assert "Retry-After" not in r.headers  # Mailchimp sends none
    assert call(sandbox, "GET", "/ping").status_code == 200
    assert sandbox.control("GET", "counters").json()["rate_limited"]["mailchimp"] == 1


def test_injected_429_500_and_slow(sandbox) -> None:
    sandbox.set_faults(rate_429=1.0, retry_after_seconds=3, vendors=["mailchimp"])
    r = call(sandbox, "GET", members_path(sandbox))
    assert_problem(r, 429, "Too Many Requests")
    assert r.headers["Retry-After"] == "3"
    sandbox.set_faults(rate_500=1.0, vendors=["mailchimp"])
    assert_problem(call(sandbox, "GET", "/campaigns"), 500, "Internal Server Error")
    sandbox.set_faults(rate_slow=1.0, slow_seconds=0.4, vendors=["mailchimp"])
    started = time.monotonic()
    assert call(sandbox, "GET", "/ping").status_code == 200
    assert time.monotonic() - started >= 0.4
    faults = sandbox.control("GET", "counters").json()["faults"]["mailchimp"]
    assert faults["429"] == 1 and faults["500"] == 1 and faults["slow"] == 1


def test_malformed_and_duplicate_records(sandbox) -> None:
    sandbox.set_faults(rate_malformed=1.0, vendors=["mailchimp"])
    page = call(sandbox, "GET", members_path(sandbox), params={"count": 20}).json()["members"]
    assert page and all(m["last_changed"] == "not-a-timestamp" or m["id"] is None for m in page)
    sandbox.set_faults(rate_duplicate=1.0, vendors=["mailchimp"])
    first = call(sandbox, "GET", members_path(sandbox), params={"count": 10}).json()["members"]
    second = call(sandbox, "GET", members_path(sandbox), params={"count": 10, "offset": 10}).json()["members"]
    assert [m["id"] for m in second[:10]] == [m["id"] for m in first] and len(second) == 20


@pytest.mark.parametrize("drift", ["added_field", "retyped_field"])
def test_schema_drift(sandbox, drift: str) -> None:
    sandbox.set_faults(drift=drift, vendors=["mailchimp"])
    page = call(sandbox, "GET", members_path(sandbox), params={"count": 5}).json()["members"]
    assert page
    for member in page:
        if drift == "added_field":
            assert member["sandbox_added_field"] == "sandbox drift"
        else:
            assert isinstance(member["web_id"], str) and member["web_id"].isdigit()


# --------------------------------------------------------------------------------------------
# clock
# --------------------------------------------------------------------------------------------


def test_clock_advance_reveals_new_members(private_sandbox) -> None:
    sandbox = private_sandbox
    before = clock(sandbox)
    seen = {m["id"] for m in walk_members(sandbox, 1000)[0]}
    assert seen == set(expected_members(sandbox, before))
    sandbox.control("POST", "clock/advance", json={"days": 2})
    after = clock(sandbox)
    now_seen = {m["id"] for m in walk_members(sandbox, 1000)[0]}
    assert now_seen == set(expected_members(sandbox, after)) and len(now_seen) > len(seen)
    changed, _ = walk_members(sandbox, 1000, since_last_changed=stamp(before))
    assert {m["id"] for m in changed} >= now_seen - seen


def test_clock_advance_reveals_new_report_activity(private_sandbox) -> None:
    # Campaigns and reports are built once per clock and kept: each clock move must show what
    # happened since, on the campaign list and on a report already read.
    sandbox = private_sandbox

    def report(cid: str) -> tuple[int, int]:
        body = call(sandbox, "GET", f"/reports/{cid}/email-activity", params={"count": 1000}).json()
        return body["total_items"], sum(len(e["activity"]) for e in body["emails"])

    def expected(cid: str) -> tuple[int, int]:
        now = clock(sandbox)
        rows = [r for r in store(sandbox, "mailchimp_activity") if r["campaign_id"] == cid and r["timestamp"] <= now]
        return (
            len({r["email_address"] for r in rows if r["action"] == "sent"}),
            sum(r["action"] in ("open", "click", "bounce") for r in rows),
        )

    def sent_ids() -> set[str]:
        return {c["id"] for c in call(sandbox, "GET", "/campaigns", params={"count": 1000}).json()["campaigns"]}

    start = clock(sandbox)
    upcoming = min(
        (c for c in store(sandbox, "mailchimp_campaigns") if c["send_time"] > start), key=lambda c: c["send_time"]
    )
    cid = upcoming["campaign_id"]
    assert cid not in sent_ids()
    sandbox.control("POST", "clock/advance", json={"days": (upcoming["send_time"] - start).days + 1})
    assert cid in sent_ids()
    first = report(cid)
    assert first == expected(cid) and first[0] > 0
    sandbox.control("POST", "clock/advance", json={"days": 2})
    later = report(cid)
    assert later == expected(cid) and later[1] > first[1]


# --------------------------------------------------------------------------------------------
# writes
# --------------------------------------------------------------------------------------------


def test_put_member_and_tags_are_visible_to_later_reads(private_sandbox) -> None:
    sandbox = private_sandbox
    email = "Ada.Lovelace@analytical.org"
    path = f"{members_path(sandbox)}/{md5(email)}"
    body = {"email_address": email, "status_if_new": "subscribed", "merge_fields": {"FNAME": "Ada"}}
    created = call(sandbox, "PUT", path, json=body).json()
    assert (
        created["status"] == "subscribed" and created["id"] == md5(email) and created["merge_fields"]["FNAME"] == "Ada"
    )
    assert created["last_changed"] == stamp(clock(sandbox))
    # status_if_new does not touch an existing member; status does.
    again = call(sandbox, "PUT", path, json={"email_address": email, "status_if_new": "unsubscribed"}).json()
    assert again["status"] == "subscribed"
    tags = {"tags": [{"name": "abandoned_checkout_24h", "status": "active"}]}
    r = call(sandbox, "POST", f"{path}/tags", json=tags)
    assert r.status_code == 204 and r.content == b""
    read = call(sandbox, "GET", f"{path}/tags").json()
    assert [t["name"] for t in read["tags"]] == ["abandoned_checkout_24h"] and read["total_items"] == 1
    assert read["tags"][0]["date_added"] == stamp(clock(sandbox))
    listed, _ = walk_members(sandbox, 1000)
    assert [m["tags"] for m in listed if m["id"] == md5(email)] == [
        [{"id": read["tags"][0]["id"], "name": "abandoned_checkout_24h"}]
    ]
    call(
        sandbox,
        "POST",
        f"{path}/tags",
        json={"tags": [{"name": "abandoned_checkout_24h", "status": "inactive"}]},
    )
    assert call(sandbox, "GET", f"{path}/tags").json()["total_items"] == 0
    assert_problem(
        call(sandbox, "POST", f"{path}/tags", json={"tags": [{"name": "x", "status": "on"}]}),
        400,
        "Invalid Resource",
    )
    assert_problem(
        call(sandbox, "POST", f"{members_path(sandbox)}/{'0' * 32}/tags", json=tags),
        404,
        "Resource Not Found",
    )
    mismatch = call(sandbox, "PUT", f"{members_path(sandbox)}/{'0' * 32}", json=body)
    assert_problem(mismatch, 400, "Invalid Resource")
    received = sandbox.control("GET", "received", params={"vendor": "mailchimp"}).json()["items"]
    assert [i["kind"] for i in received] == ["member_put", "member_put", "member_tags", "member_tags"]
    assert sandbox.control("GET", "counters").json()["writes"]["mailchimp"] == {
        "member_put": 2,
        "member_tags": 2,
    }


def test_writes_show_on_the_next_page_of_a_listing_already_read(private_sandbox) -> None:
    """The server keeps what it listed between pages (and across clock moves rebuilds it): a
    write made between two reads of the same query must show on the second."""
    sandbox = private_sandbox
    order = {"sort_field": "last_changed", "sort_dir": "DESC"}
    before, _ = walk_members(sandbox, 1000, **order)
    oldest = [m for m in reversed(before) if m["status"] == "subscribed"]
    unsubscribed, archived, forgotten, tagged = oldest[:4]

    def path(member: dict) -> str:
        return f"{members_path(sandbox)}/{member['id']}"

    assert call(sandbox, "PATCH", path(unsubscribed), json={"status": "unsubscribed"}).status_code == 200
    assert call(sandbox, "DELETE", path(archived)).status_code == 204
    assert call(sandbox, "POST", f"{path(forgotten)}/actions/delete-permanent").status_code == 204
    tags = {"tags": [{"name": "winback", "status": "active"}]}
    assert call(sandbox, "POST", f"{path(tagged)}/tags", json=tags).status_code == 204
    email = "grace.hopper@navy-mail.org"
    body = {"email_address": email, "status_if_new": "subscribed"}
    assert call(sandbox, "PUT", f"{members_path(sandbox)}/{md5(email)}", json=body).status_code == 200

    page = call(sandbox, "GET", members_path(sandbox), params={"count": 10, **order}).json()
    assert page["total_items"] == len(before) - 1
    by_id = {m["id"]: m for m in page["members"]}
    assert by_id[unsubscribed["id"]]["status"] == "unsubscribed" and md5(email) in by_id  # changed now: first
    after, _ = walk_members(sandbox, 1000, **order)
    assert {m["id"] for m in after} == {m["id"] for m in before} - {archived["id"], forgotten["id"]} | {md5(email)}
    assert "winback" in [t["name"] for m in after if m["id"] == tagged["id"] for t in m["tags"]]
    assert [m["id"] for m in walk_members(sandbox, 1000, status="archived")[0]] == [archived["id"]]
    # A clock move rebuilds what the store shows; the writes stay on it.
    sandbox.control("POST", "clock/advance", json={"days": 1})
    moved, _ = walk_members(sandbox, 1000, **order)
    assert {m["id"] for m in moved} == set(expected_members(sandbox, clock(sandbox))) - {
        archived["id"],
        forgotten["id"],
    } | {md5(email)}
    assert [m["id"] for m in walk_members(sandbox, 1000, status="archived")[0]] == [archived["id"]]


def test_a_batch_shows_each_member_as_a_single_read_does(private_sandbox) -> None:
    """A batch reads its members' store rows and campaign stats all at once."""
    sandbox = private_sandbox
    active, _ = walk_members(sandbox, 1000, status="subscribed")
    active = [m for m in active if m["stats"]["avg_open_rate"] > 0][:5]
    assert len(active) == 5
    batch = {
        "members": [{"email_address": m["email_address"].upper(), "status": "unsubscribed"} for m in active],
        "update_existing": True,
    }
    result = call(sandbox, "POST", f"/lists/{list_id(sandbox)}", json=batch).json()
    assert result["total_updated"] == 5 and result["error_count"] == 0
    fields = ("status", "stats", "merge_fields", "timestamp_signup", "member_rating")
    for updated in result["updated_members"]:
        single = call(sandbox, "GET", f"{members_path(sandbox)}/{updated['id']}").json()
        assert single["status"] == "unsubscribed"
        assert {k: updated[k] for k in fields} == {k: single[k] for k in fields}


def test_consent_rules_and_per_record_errors(private_sandbox) -> None:
    sandbox = private_sandbox
    now = clock(sandbox)
    expected = expected_members(sandbox, now)
    subscribed = [r for r in expected.values() if r["status"] == "subscribed"][:3]
    unsubscribed = subscribed.pop()
    path = f"{members_path(sandbox)}/{md5(unsubscribed['email_address'])}"
    assert call(sandbox, "PATCH", path, json={"status": "unsubscribed"}).json()["status"] == "unsubscribed"
    # An unsubscribed contact cannot be put back to subscribed, only through double opt-in.
    resub = call(sandbox, "PATCH", path, json={"status": "subscribed"})
    assert_problem(resub, 400, "Member In Compliance State")
    assert (
        call(
            sandbox,
            "PUT",
            path,
            json={"email_address": unsubscribed["email_address"], "status_if_new": "subscribed"},
        ).json()["status"]
        == "unsubscribed"
    )
    assert call(sandbox, "PATCH", path, json={"status": "pending"}).json()["status"] == "pending"
    invalid = call(sandbox, "POST", members_path(sandbox), json={"email_address": "n/a", "status": "subscribed"})
    assert invalid.json()["detail"] == "n/a looks fake or invalid, please enter a real email address."
    exists = call(
        sandbox,
        "POST",
        members_path(sandbox),
        json={"email_address": subscribed[0]["email_address"], "status": "subscribed"},
    )
    assert_problem(exists, 400, "Member Exists")
    # A permanently deleted address cannot be re-imported.
    gone = f"{members_path(sandbox)}/{md5(subscribed[1]['email_address'])}"
    assert call(sandbox, "POST", f"{gone}/actions/delete-permanent").status_code == 204
    assert call(sandbox, "GET", gone).status_code == 404
    assert_problem(
        call(
            sandbox,
            "PUT",
            gone,
            json={"email_address": subscribed[1]["email_address"], "status_if_new": "subscribed"},
        ),
        400,
        "Forgotten Email Not Subscribed",
    )
    batch = {
        "members": [
            {"email_address": subscribed[0]["email_address"], "status": "subscribed"},
            {
                "email_address": "fresh.one@gmail.com",
                "status": "subscribed",
                "merge_fields": {"FNAME": "Fresh"},
            },
            {"email_address": "test@example.com", "status": "subscribed"},
            {"email_address": unsubscribed["email_address"], "status": "subscribed"},
            {"email_address": subscribed[1]["email_address"], "status": "subscribed"},
        ],
    }
    result = call(sandbox, "POST", f"/lists/{list_id(sandbox)}", json=batch).json()
    assert result["total_created"] == 1 and result["total_updated"] == 0 and result["error_count"] == 4
    assert [m["email_address"] for m in result["new_members"]] == ["fresh.one@gmail.com"]
    codes = {e["email_address"]: e["error_code"] for e in result["errors"]}
    assert codes == {
        subscribed[0]["email_address"]: "ERROR_CONTACT_EXISTS",
        "test@example.com": "ERROR_GENERIC",
        unsubscribed["email_address"]: "ERROR_CONTACT_EXISTS",
        subscribed[1]["email_address"]: "ERROR_GENERIC",
    }
    result = call(sandbox, "POST", f"/lists/{list_id(sandbox)}", json={**batch, "update_existing": True}).json()
    assert result["total_created"] == 0 and result["total_updated"] == 2 and result["error_count"] == 3
    errors = {e["email_address"]: (e["error_code"], e["error"]) for e in result["errors"]}
    # Still in a compliance state while the re-opt-in is pending.
    assert errors[unsubscribed["email_address"]][0] == "ERROR_GENERIC"
    assert "compliance state" in errors[unsubscribed["email_address"]][1]
    assert "permanently deleted" in errors[subscribed[1]["email_address"]][1]
    too_many = {"members": [{"email_address": f"p{i}@gmail.com", "status": "subscribed"} for i in range(501)]}
    assert_problem(call(sandbox, "POST", f"/lists/{list_id(sandbox)}", json=too_many), 400, "Invalid Resource")


def test_static_segments_and_tags_survive_the_clock(private_sandbox) -> None:
    sandbox = private_sandbox
    now = clock(sandbox)
    expected = expected_members(sandbox, now)
    emails = [r["email_address"] for r in expected.values() if r["status"] == "subscribed"][:3]
    seg = call(
        sandbox,
        "POST",
        f"/lists/{list_id(sandbox)}/segments",
        json={"name": "abandoned_checkout_24h", "static_segment": emails[:1] + ["stranger@gmail.com"]},
    ).json()
    assert seg["type"] == "static" and seg["member_count"] == 1
    seg_path = f"/lists/{list_id(sandbox)}/segments/{seg['id']}"
    result = call(
        sandbox,
        "POST",
        seg_path,
        json={"members_to_add": emails[1:] + ["stranger@gmail.com"], "members_to_remove": emails[:1]},
    ).json()
    assert result["total_added"] == 2 and result["total_removed"] == 1
    assert result["errors"] == [{"email_addresses": ["stranger@gmail.com"], "error": result["errors"][0]["error"]}]
    members = call(sandbox, "GET", f"{seg_path}/members").json()
    assert sorted(m["id"] for m in members["members"]) == sorted(md5(e) for e in emails[1:])
    tag_ids = {
        t["name"]: t["id"] for t in call(sandbox, "GET", f"{members_path(sandbox)}/{md5(emails[1])}").json()["tags"]
    }
    assert tag_ids["abandoned_checkout_24h"] == seg["id"]  # a tag is a static segment
    assert_problem(
        call(sandbox, "POST", f"/lists/{list_id(sandbox)}/segments", json={"name": "abandoned_checkout_24h"}),
        400,
        "Invalid Resource",
    )
    assert (
        call(sandbox, "POST", f"/lists/{list_id(sandbox)}/segments/123", json={"members_to_add": []}).status_code == 404
    )
    # A member tagged now who unsubscribes later in the world keeps the tag and turns unsubscribed.
    horizon = datetime.fromisoformat(sandbox.control("GET", "clock").json()["horizon"].replace("Z", "+00:00"))
    later = min(
        (
            r
            for r in store(sandbox, "mailchimp_members")
            if r["created_at"] <= now and r["unsubscribed_at"] and now < r["unsubscribed_at"] <= horizon
        ),
        key=lambda r: r["unsubscribed_at"],
    )
    path = f"{members_path(sandbox)}/{md5(later['email_address'])}"
    call(
        sandbox,
        "POST",
        f"{path}/tags",
        json={"tags": [{"name": "abandoned_checkout_24h", "status": "active"}]},
    )
    days = (later["unsubscribed_at"] - now).total_seconds() / 86400 + 0.01
    sandbox.control("POST", "clock/advance", json={"days": days})
    member = call(sandbox, "GET", path).json()
    assert member["status"] == "unsubscribed" and "abandoned_checkout_24h" in [t["name"] for t in member["tags"]]
    assert member["last_changed"] == stamp(later["unsubscribed_at"])
    # The contact opted out by themselves: the API cannot subscribe them again.
    assert_problem(call(sandbox, "PATCH", path, json={"status": "subscribed"}), 400, "Member In Compliance State")
