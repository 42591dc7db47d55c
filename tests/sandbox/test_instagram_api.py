"""The Instagram Graph API sandbox over HTTP: nodes, edges, cursor paging, fields, time
filters, auth, Business Use Case rate limits, faults and the clock.

Expected values come from the store read directly with DuckDB and the visibility rule applied
here (a media, comment or mention exists once its `timestamp` is at or before the clock).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import duckdb
import pytest
import requests

VERSION = "v21.0"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def creds(sandbox) -> dict[str, str]:
    return json.loads((sandbox.world / "world.json").read_text())["credentials"]["instagram"]


def clock(sandbox) -> datetime:
    return datetime.fromisoformat(sandbox.control("GET", "clock").json()["clock"].replace("Z", "+00:00"))


def get(sandbox, path: str, token: str | None = "default", **params) -> requests.Response:
    if token == "default":
        token = creds(sandbox)["access_token"]
    if token is not None:
        params["access_token"] = token
    url = f"{sandbox.vendor_url('instagram')}/{VERSION}/{path.lstrip('/')}"
    return requests.get(url, params=params, timeout=30)


def walk(sandbox, path: str, **params) -> tuple[list[dict], int]:
    """Every record of an edge, following `paging.next`; returns (records, pages)."""
    r = get(sandbox, path, **params)
    records, pages = [], 0
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        records += body["data"]
        pages += 1
        nxt = body.get("paging", {}).get("next")
        if not nxt:
            return records, pages
        assert nxt.startswith(sandbox.vendor_url("instagram") + f"/{VERSION}/")
        r = requests.get(nxt, timeout=30)


def store(world: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Run SQL where `{t}` is replaced by the read_parquet() of store table t."""
    for table in ("instagram_media", "instagram_comments", "instagram_mentions"):
        sql = sql.replace("{" + table + "}", f"read_parquet('{world / 'store' / (table + '.parquet')}')")
    return duckdb.connect().execute(sql, params or []).fetchall()


def graph_time(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def assert_graph_error(r: requests.Response, status: int, code: int, **expected) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["fbtrace_id"] and error["type"], error
    for key, value in expected.items():
        assert error[key] == value, error
    return error


@pytest.fixture(autouse=True)
def fresh_limits(sandbox):
    """A full call budget for every test (re-applying the overrides clears the limiters);
    the overrides are restored afterwards."""
    overrides = sandbox.control("GET", "limits").json()["overrides"]
    sandbox.control("PUT", "limits", json=overrides)
    yield overrides
    sandbox.control("PUT", "limits", json=overrides)


MEDIA_FIELDS = "id,caption,media_type,permalink,timestamp,like_count,comments_count"
COMMENT_FIELDS = "id,text,timestamp,username,like_count,from{id,username}"
TAG_FIELDS = "id,caption,username,timestamp,media_type,permalink,like_count,comments_count"


# --------------------------------------------------------------------------------------------
# nodes and edges
# --------------------------------------------------------------------------------------------


def test_media_paging_walks_every_visible_media_once(sandbox) -> None:
    ig_user, now = creds(sandbox)["ig_user_id"], clock(sandbox)
    records, pages = walk(sandbox, f"{ig_user}/media", fields=MEDIA_FIELDS, limit=4)
    expected = {
        media_id: (ts, count)
        for media_id, ts, count in store(
            sandbox.world,
            "SELECT m.media_id, m.timestamp, (SELECT count(*) FROM {instagram_comments} c"
            " WHERE c.media_id = m.media_id AND c.timestamp <= ?) FROM {instagram_media} m WHERE m.timestamp <= ?",
            [now, now],
        )
    }
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == set(expected)
    assert pages == -(-len(expected) // 4)
    stamps = [r["timestamp"] for r in records]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    for r in records:
        assert set(r) == set(MEDIA_FIELDS.split(","))
        assert r["timestamp"] == graph_time(expected[r["id"]][0])
        assert r["comments_count"] == expected[r["id"]][1]


def test_comments_newest_first_with_from_and_paging(sandbox) -> None:
    ig_user, now = creds(sandbox)["ig_user_id"], clock(sandbox)
    media, _ = walk(sandbox, f"{ig_user}/media", limit=100)
    seen: list[str] = []
    for m in media:
        comments, _ = walk(sandbox, f"{m['id']}/comments", fields=COMMENT_FIELDS, limit=3)
        stamps = [c["timestamp"] for c in comments]
        assert stamps == sorted(stamps, reverse=True)
        for c in comments:
            assert set(c) == {"id", "text", "timestamp", "username", "like_count", "from"}
            assert c["from"]["username"] == c["username"] and set(c["from"]) == {"id", "username"}
        seen += [c["id"] for c in comments]
    expected = store(
        sandbox.world,
        "SELECT c.comment_id, c.user_id FROM {instagram_comments} c JOIN {instagram_media} m USING (media_id)"
        " WHERE c.timestamp <= ? AND m.timestamp <= ?",
        [now, now],
    )
    assert len(seen) == len(set(seen)) == len(expected) and set(seen) == {r[0] for r in expected}


def test_comments_come_at_most_50_a_query_whatever_the_limit(sandbox, monkeypatch) -> None:
    """The comments edge's reference: "Returns a maximum of 50 comments per query". The test
    world's posts have fewer, so the cap is lowered to see it served."""
    from sandbox.server.vendors import instagram

    assert instagram.MAX_COMMENTS_LIMIT == 50
    monkeypatch.setattr(instagram, "MAX_COMMENTS_LIMIT", 5)
    media, _ = walk(sandbox, f"{creds(sandbox)['ig_user_id']}/media", fields=MEDIA_FIELDS, limit=100)
    busiest = max(media, key=lambda m: m["comments_count"])
    assert busiest["comments_count"] > 5
    first = get(sandbox, f"{busiest['id']}/comments", fields=COMMENT_FIELDS, limit=10).json()
    assert len(first["data"]) == 5 and first["paging"]["next"]
    comments, _ = walk(sandbox, f"{busiest['id']}/comments", fields=COMMENT_FIELDS, limit=10)
    assert len(comments) == busiest["comments_count"]


def test_tags_edge_lists_mentions(sandbox) -> None:
    ig_user, now = creds(sandbox)["ig_user_id"], clock(sandbox)
    records, _ = walk(sandbox, f"{ig_user}/tags", fields=TAG_FIELDS, limit=2)
    expected = dict(
        store(sandbox.world, "SELECT media_id, username FROM {instagram_mentions} WHERE timestamp <= ?", [now])
    )
    assert [r["id"] for r in records] and {r["id"]: r["username"] for r in records} == expected
    assert all(set(r) == set(TAG_FIELDS.split(",")) for r in records)


def test_cursors_previous_and_before(sandbox) -> None:
    ig_user = creds(sandbox)["ig_user_id"]
    first = get(sandbox, f"{ig_user}/media", limit=3).json()
    assert "previous" not in first["paging"] and set(first["paging"]["cursors"]) == {"before", "after"}
    second = requests.get(first["paging"]["next"], timeout=30).json()
    back = requests.get(second["paging"]["previous"], timeout=30).json()
    assert back["data"] == first["data"]
    assert (
        get(sandbox, f"{ig_user}/media", limit=3, after=second["paging"]["cursors"]["before"]).json()["data"]
        == second["data"][1:] + requests.get(second["paging"]["next"], timeout=30).json()["data"][:1]
    )
    assert_graph_error(get(sandbox, f"{ig_user}/media", after="%%%"), 400, 100)


def test_nodes_fields_and_defaults(sandbox) -> None:
    ig_user, now = creds(sandbox)["ig_user_id"], clock(sandbox)
    media_count = store(sandbox.world, "SELECT count(*) FROM {instagram_media} WHERE timestamp <= ?", [now])[0][0]
    user = get(sandbox, ig_user, fields="username,media_count").json()
    assert user == {"username": "northwindoutfitters", "media_count": media_count, "id": ig_user}
    assert get(sandbox, ig_user).json() == {"id": ig_user}
    media = get(sandbox, f"{ig_user}/media", limit=1).json()["data"]
    assert set(media[0]) == {"id"}  # edges return only ids unless fields are asked for

    comment_id, text, ts, username, user_id, media_id = store(
        sandbox.world,
        "SELECT comment_id, text, timestamp, username, user_id, media_id FROM {instagram_comments}"
        " WHERE timestamp <= ? ORDER BY timestamp LIMIT 1",
        [now],
    )[0]
    assert get(sandbox, comment_id).json() == {"timestamp": graph_time(ts), "text": text, "id": comment_id}
    full = get(sandbox, comment_id, fields="from{username},media,like_count").json()
    assert full["from"] == {"username": username, "id": user_id} and full["media"] == {"id": media_id}
    assert get(sandbox, media_id, fields="caption").json()["id"] == media_id
    assert_graph_error(
        get(sandbox, f"{ig_user}/media", fields="id,bogus"),
        400,
        100,
        message="(#100) Tried accessing nonexisting field (bogus) on node type (IGMedia)",
    )


def test_unknown_objects_and_paths(sandbox) -> None:
    ig_user, now = creds(sandbox)["ig_user_id"], clock(sandbox)
    for path in ("123", "123/comments", f"{ig_user}/comments"):
        assert_graph_error(get(sandbox, path), 400, 100, error_subcode=33, type="GraphMethodException")
    future = store(sandbox.world, "SELECT media_id FROM {instagram_media} WHERE timestamp > ? LIMIT 1", [now])
    if future:  # media the brand has not posted yet does not exist
        assert_graph_error(get(sandbox, f"{future[0][0]}/comments"), 400, 100, error_subcode=33)
    assert_graph_error(get(sandbox, f"{ig_user}/insights"), 400, 2500)
    r = requests.get(
        f"{sandbox.vendor_url('instagram')}/{ig_user}",
        params={"access_token": creds(sandbox)["access_token"]},
        timeout=30,
    )
    assert r.json() == {"id": ig_user}  # an unversioned call uses the default version


def test_limit_default_and_cap(sandbox) -> None:
    ig_user = creds(sandbox)["ig_user_id"]
    comments = store(
        sandbox.world,
        "SELECT media_id, count(*) n FROM {instagram_comments} WHERE timestamp <= ? GROUP BY 1 ORDER BY n DESC LIMIT 1",
        [clock(sandbox)],
    )
    assert len(get(sandbox, f"{ig_user}/media").json()["data"]) == min(
        25, get(sandbox, ig_user, fields="media_count").json()["media_count"]
    )
    body = get(sandbox, f"{comments[0][0]}/comments", limit=1000).json()
    assert len(body["data"]) == min(100, comments[0][1])
    # Links carry the limit the page was served with, capped at 100.
    first = get(sandbox, f"{ig_user}/media", limit=1).json()
    capped = get(sandbox, f"{ig_user}/media", limit=1000, after=first["paging"]["cursors"]["after"]).json()
    assert parse_qs(urlsplit(capped["paging"]["previous"]).query)["limit"] == ["100"]
    assert_graph_error(get(sandbox, f"{ig_user}/media", limit="ten"), 400, 100)


def test_since_until_filter_media(sandbox) -> None:
    ig_user, now = creds(sandbox)["ig_user_id"], clock(sandbox)
    since, until = now - timedelta(days=20), now - timedelta(days=5)
    records, _ = walk(
        sandbox, f"{ig_user}/media", fields="timestamp", limit=2,
        since=str(int(since.timestamp())), until=str(int(until.timestamp())),
    )  # fmt: skip
    expected = store(
        sandbox.world,
        "SELECT media_id FROM {instagram_media} WHERE timestamp <= ? AND timestamp >= ? AND timestamp <= ?",
        [now, since.replace(microsecond=0), until.replace(microsecond=0)],
    )
    assert records and {r["id"] for r in records} == {r[0] for r in expected}
    assert all(graph_time(since) <= r["timestamp"] <= graph_time(until) for r in records)
    assert_graph_error(get(sandbox, f"{ig_user}/media", since="soon"), 400, 100)


# --------------------------------------------------------------------------------------------
# auth and rate limits
# --------------------------------------------------------------------------------------------


def test_auth_rejected_in_graph_shape(sandbox) -> None:
    ig_user = creds(sandbox)["ig_user_id"]
    assert_graph_error(
        get(sandbox, ig_user, token=None), 400, 104,
        message="An access token is required to request this resource.", type="OAuthException",
    )  # fmt: skip
    r = get(sandbox, ig_user, token="not-the-token")
    assert_graph_error(
        r, 400, 190, message="Invalid OAuth access token - Cannot parse access token", type="OAuthException"
    )
    assert "invalid_token" in r.headers["WWW-Authenticate"]
    bearer = {"Authorization": f"Bearer {creds(sandbox)['access_token']}"}
    r = requests.get(f"{sandbox.vendor_url('instagram')}/{VERSION}/{ig_user}", headers=bearer, timeout=30)
    assert r.status_code == 200 and r.json() == {"id": ig_user}


def test_business_use_case_limit(sandbox, fresh_limits) -> None:
    ig_user = creds(sandbox)["ig_user_id"]
    sandbox.control("PUT", "limits", json={**fresh_limits, "instagram": {"calls": {"limit": 4}}})
    usage = []
    for _ in range(4):
        r = get(sandbox, ig_user)
        assert r.status_code == 200
        buc = json.loads(r.headers["X-Business-Use-Case-Usage"])[ig_user][0]
        assert buc["type"] == "instagram" and buc["estimated_time_to_regain_access"] == 0
        assert json.loads(r.headers["X-App-Usage"])["call_count"] == buc["call_count"]
        usage.append(buc["call_count"])
    assert usage == [25, 50, 75, 100]
    r = get(sandbox, f"{ig_user}/media")
    assert_graph_error(r, 400, 80002, is_transient=True, type="OAuthException")
    buc = json.loads(r.headers["X-Business-Use-Case-Usage"])[ig_user][0]
    # The budget is a rolling 24 hours: the first call leaves it in a day.
    assert buc["call_count"] == 100 and 1435 <= buc["estimated_time_to_regain_access"] <= 1440
    assert sandbox.control("GET", "counters").json()["rate_limited"]["instagram"] == 1
    # Rejected credentials are not counted against the budget, and do not get usage headers.
    assert "X-App-Usage" not in get(sandbox, ig_user, token="nope").headers


# --------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------


def test_injected_429_500_and_slow(sandbox) -> None:
    ig_user = creds(sandbox)["ig_user_id"]
    sandbox.set_faults(rate_429=1.0, retry_after_seconds=4, vendors=["instagram"])
    r = get(sandbox, f"{ig_user}/media")
    assert_graph_error(r, 429, 80002, is_transient=True)
    assert r.headers["Retry-After"] == "4"
    sandbox.set_faults(rate_500=1.0, vendors=["instagram"])
    assert_graph_error(get(sandbox, f"{ig_user}/media"), 500, 2, is_transient=True)
    sandbox.set_faults(rate_slow=1.0, slow_seconds=0.3, vendors=["instagram"])
    started = time.monotonic()
    assert get(sandbox, ig_user).status_code == 200
    assert time.monotonic() - started >= 0.3
    faults = sandbox.control("GET", "counters").json()["faults"]["instagram"]
    assert faults["429"] == 1 and faults["500"] == 1 and faults["slow"] == 1


def test_malformed_and_duplicate_records(sandbox) -> None:
    ig_user = creds(sandbox)["ig_user_id"]
    sandbox.set_faults(rate_malformed=1.0, vendors=["instagram"])
    page = get(sandbox, f"{ig_user}/media", fields=MEDIA_FIELDS, limit=10).json()["data"]
    assert page and all(r["timestamp"] == "not-a-timestamp" or r["id"] is None for r in page)
    assert any(r["id"] is None for r in page) and any(r["timestamp"] == "not-a-timestamp" for r in page)

    sandbox.set_faults(rate_duplicate=1.0, vendors=["instagram"])
    first = get(sandbox, f"{ig_user}/tags", fields=TAG_FIELDS, limit=3).json()
    second = requests.get(first["paging"]["next"], timeout=30).json()
    assert second["data"][:3] == first["data"] and len(second["data"]) > 3


@pytest.mark.parametrize("drift", ["added_field", "retyped_field"])
def test_schema_drift(sandbox, drift: str) -> None:
    ig_user = creds(sandbox)["ig_user_id"]
    sandbox.set_faults(drift=drift, vendors=["instagram"])
    page = get(sandbox, f"{ig_user}/media", fields=MEDIA_FIELDS, limit=5).json()["data"]
    assert page
    for record in page:
        if drift == "added_field":
            assert record["sandbox_added_field"] == "sandbox drift"
        else:
            assert isinstance(record["like_count"], str) and record["like_count"].isdigit()


# --------------------------------------------------------------------------------------------
# clock
# --------------------------------------------------------------------------------------------


def test_clock_advance_reveals_new_media_and_comments(private_sandbox) -> None:
    sandbox = private_sandbox
    ig_user = creds(sandbox)["ig_user_id"]
    media_before, _ = walk(sandbox, f"{ig_user}/media", limit=100)
    top = media_before[0]["id"]
    comments_before, _ = walk(sandbox, f"{top}/comments", limit=100)
    sandbox.control("POST", "clock/advance", json={"days": 5})
    now = clock(sandbox)
    media_after, _ = walk(sandbox, f"{ig_user}/media", limit=100)
    expected = store(sandbox.world, "SELECT media_id FROM {instagram_media} WHERE timestamp <= ?", [now])
    assert {m["id"] for m in media_after} == {r[0] for r in expected}
    assert len(media_after) > len(media_before)
    assert [m["id"] for m in media_after[-len(media_before) :]] == [m["id"] for m in media_before]
    comments_after, _ = walk(sandbox, f"{top}/comments", limit=100)
    expected_comments = store(
        sandbox.world,
        "SELECT count(*) FROM {instagram_comments} WHERE media_id = ? AND timestamp <= ?",
        [top, now],
    )[0][0]
    assert len(comments_after) == expected_comments >= len(comments_before)
