"""The Mixpanel Raw Event Export sandbox over HTTP: the JSONL stream, date/event/where
filters, late events, auth, rate limits, faults and the clock.

Expected values come from the store read directly with DuckDB and the visibility rule applied
here (an event is exported once Mixpanel has received it: `arrived_at <= clock`).
"""

from __future__ import annotations

import gc
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import requests

PATH = "/api/2.0/export"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def creds(sandbox) -> dict[str, str]:
    return json.loads((sandbox.world / "world.json").read_text())["credentials"]["mixpanel"]


def clock(sandbox) -> datetime:
    return datetime.fromisoformat(sandbox.control("GET", "clock").json()["clock"].replace("Z", "+00:00"))


def export(sandbox, auth: tuple[str, str] | None = None, headers: dict | None = None, **params) -> requests.Response:
    c = creds(sandbox)
    params.setdefault("project_id", c["project_id"])
    auth = auth or (c["service_account_username"], c["service_account_secret"])
    return requests.get(sandbox.vendor_url("mixpanel") + PATH, params=params, auth=auth, headers=headers, timeout=60)


def lines(r: requests.Response) -> list[dict]:
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]


def visible_ids(world: Path, start: date, end: date, now: datetime, where: str = "TRUE") -> list[str]:
    """Insert ids of the events with `time` in the UTC days start..end that arrived by `now`."""
    lo = datetime.combine(start, datetime.min.time(), UTC)
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC)
    sql = (
        f"SELECT insert_id FROM read_parquet('{world / 'store' / 'mixpanel_events.parquet'}')"
        f" WHERE time >= ? AND time < ? AND arrived_at <= ? AND {where}"
    )
    return [r[0] for r in duckdb.connect().execute(sql, [lo, hi, now]).fetchall()]


def full_range(sandbox) -> dict[str, str]:
    meta = json.loads((sandbox.world / "world.json").read_text())
    start = datetime.fromisoformat(meta["start"].replace("Z", "+00:00")).date()
    return {"from_date": str(start - timedelta(days=30)), "to_date": str(clock(sandbox).date())}


def assert_error(r: requests.Response, status: int, contains: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "error" and contains in body["error"], body


@pytest.fixture(autouse=True)
def fresh_limits(sandbox):
    """Per-second and hourly query budgets off (the tests send dozens of queries in a few
    seconds); re-applying overrides also clears the limiters. Restored afterwards."""
    overrides = sandbox.control("GET", "limits").json()["overrides"]
    relaxed = {"export_second": {"enabled": False}, "export_hour": {"enabled": False}}
    sandbox.control("PUT", "limits", json={**overrides, "mixpanel": relaxed})
    yield overrides
    sandbox.control("PUT", "limits", json=overrides)


# --------------------------------------------------------------------------------------------
# the export stream
# --------------------------------------------------------------------------------------------


def test_export_streams_every_visible_event_once(sandbox) -> None:
    rng = full_range(sandbox)
    r = export(sandbox, headers={"Accept-Encoding": "identity"}, **rng)
    assert r.headers["Content-Type"].startswith("text/plain") and "Content-Encoding" not in r.headers
    events = lines(r)
    expected = visible_ids(
        sandbox.world, date.fromisoformat(rng["from_date"]), date.fromisoformat(rng["to_date"]), clock(sandbox)
    )
    got = [e["properties"]["$insert_id"] for e in events]
    assert len(got) == len(set(got)) == len(expected) and set(got) == set(expected)
    sample = events[0]
    assert set(sample) == {"event", "properties"}
    assert {"time", "distinct_id", "$insert_id", "mp_processing_time_ms"} <= set(sample["properties"])
    assert not any(k.startswith("_") for e in events for k in e["properties"])


def test_gzip_when_accepted(sandbox) -> None:
    rng = full_range(sandbox)
    plain = export(sandbox, headers={"Accept-Encoding": "identity"}, **rng)
    zipped = export(sandbox, headers={"Accept-Encoding": "gzip"}, **rng)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.content == plain.content  # requests decompresses transparently


def test_dates_are_inclusive_utc_days(sandbox) -> None:
    day = clock(sandbox).date() - timedelta(days=3)
    events = lines(export(sandbox, from_date=str(day), to_date=str(day)))
    lo = datetime.combine(day, datetime.min.time(), UTC).timestamp()
    assert events and all(lo <= e["properties"]["time"] < lo + 86400 for e in events)
    assert len(events) == len(visible_ids(sandbox.world, day, day, clock(sandbox)))
    two = lines(export(sandbox, from_date=str(day - timedelta(days=1)), to_date=str(day)))
    assert len(two) == len(visible_ids(sandbox.world, day - timedelta(days=1), day, clock(sandbox)))


def test_event_where_and_limit_filters(sandbox) -> None:
    rng = full_range(sandbox)
    start, end, now = date.fromisoformat(rng["from_date"]), date.fromisoformat(rng["to_date"]), clock(sandbox)
    names = ["Order Completed", "Checkout Started"]
    events = lines(export(sandbox, event=json.dumps(names), **rng))
    assert events and {e["event"] for e in events} == set(names)
    assert len(events) == len(
        visible_ids(sandbox.world, start, end, now, "event IN ('Order Completed', 'Checkout Started')")
    )

    one = events[0]["properties"]["$insert_id"]
    found = lines(export(sandbox, where=f'properties["$insert_id"] == "{one}"', **rng))
    assert [e["properties"]["$insert_id"] for e in found] == [one]

    pricey = lines(export(sandbox, where='properties["price"] >= 100 and properties["$os"] != "iOS"', **rng))
    assert pricey and all(e["properties"]["price"] >= 100 and e["properties"]["$os"] != "iOS" for e in pricey)

    assert len(lines(export(sandbox, limit=5, **rng))) == 5
    assert_error(export(sandbox, limit=100_001, **rng), 400, "100000")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"to_date": "2026-10-10"}, "from_date"),
        ({"from_date": "2026-10-10"}, "to_date"),
        ({"from_date": "2026/10/10", "to_date": "2026-10-11"}, "from_date"),
        ({"from_date": "2026-10-12", "to_date": "2026-10-11"}, "to_date"),
        ({"from_date": "2026-10-10", "to_date": "2099-01-01"}, "to_date cannot be later than today"),
        ({"from_date": "2026-10-10", "to_date": "2026-10-11", "event": "Order Completed"}, "event"),
        ({"from_date": "2026-10-10", "to_date": "2026-10-11", "where": 'defined(properties["x"])'}, "where"),
        ({"from_date": "2026-10-10", "to_date": "2026-10-11", "project_id": ""}, "project_id"),
    ],
)
def test_bad_requests_are_400(sandbox, params: dict, message: str) -> None:
    assert_error(export(sandbox, **params), 400, message)


def test_auth_rejected_in_mixpanel_shape(sandbox) -> None:
    rng = full_range(sandbox)
    url = sandbox.vendor_url("mixpanel") + PATH
    missing = requests.get(url, params={**rng, "project_id": creds(sandbox)["project_id"]}, timeout=30)
    assert_error(missing, 401, "Unable to authenticate request")
    c = creds(sandbox)
    assert_error(export(sandbox, auth=(c["service_account_username"], "wrong"), **rng), 401, "authenticate")
    assert_error(export(sandbox, project_id="999", **rng), 401, "authenticate")


# --------------------------------------------------------------------------------------------
# late events and the clock
# --------------------------------------------------------------------------------------------


def test_late_events_appear_in_a_later_export_of_the_same_day(private_sandbox) -> None:
    sandbox = private_sandbox
    before = clock(sandbox)
    day = before.date() - timedelta(days=1)
    first = {e["properties"]["$insert_id"] for e in lines(export(sandbox, from_date=str(day), to_date=str(day)))}
    assert first == set(visible_ids(sandbox.world, day, day, before))
    late = set(visible_ids(sandbox.world, day, day, before + timedelta(days=2))) - first
    assert late, "the test world should have events of that day that arrive after the clock"

    sandbox.control("POST", "clock/advance", json={"days": 2})
    after = clock(sandbox)
    again = {e["properties"]["$insert_id"] for e in lines(export(sandbox, from_date=str(day), to_date=str(day)))}
    assert again == first | late
    # The new days can now be exported too.
    new = lines(export(sandbox, from_date=str(before.date()), to_date=str(after.date())))
    assert len(new) == len(visible_ids(sandbox.world, before.date(), after.date(), after)) > 0


# --------------------------------------------------------------------------------------------
# rate limits
# --------------------------------------------------------------------------------------------


def test_query_rate_limits_answer_429(sandbox, fresh_limits) -> None:
    day = {"from_date": str(clock(sandbox).date()), "to_date": str(clock(sandbox).date())}
    sandbox.control("PUT", "limits", json={**fresh_limits, "mixpanel": {"export_second": {"limit": 2}}})
    assert [export(sandbox, **day).status_code for _ in range(2)] == [200, 200]
    r = export(sandbox, **day)
    assert_error(r, 429, "Rate limit")
    assert r.headers["Retry-After"] == "1"

    sandbox.control("PUT", "limits", json={**fresh_limits, "mixpanel": {"export_hour": {"limit": 1}}})
    assert export(sandbox, **day).status_code == 200
    r = export(sandbox, **day)
    assert_error(r, 429, "Rate limit")
    assert int(r.headers["Retry-After"]) > 3000
    assert sandbox.control("GET", "counters").json()["rate_limited"]["mixpanel"] == 2


def test_concurrent_queries_limit_and_slot_release(sandbox) -> None:
    relaxed = {"export_second": {"enabled": False}, "export_hour": {"enabled": False}}
    sandbox.control("PUT", "limits", json={"mixpanel": {**relaxed, "export_concurrent": {"limit": 1}}})
    state = sandbox.app.state.sandbox
    rng = full_range(sandbox)
    with state.limits.slot("mixpanel", "export_concurrent", creds(sandbox)["project_id"]):
        assert_error(export(sandbox, **rng), 429, "concurrent")
    # Finished streams give their slot back ...
    assert [export(sandbox, **rng).status_code for _ in range(3)] == [200, 200, 200]
    # ... and so does a stream the client abandons half-way.
    with requests.get(
        sandbox.vendor_url("mixpanel") + PATH,
        params={**rng, "project_id": creds(sandbox)["project_id"]},
        auth=(creds(sandbox)["service_account_username"], creds(sandbox)["service_account_secret"]),
        stream=True,
        timeout=30,
    ) as r:
        assert r.status_code == 200
        next(r.iter_content(1024))
    deadline = time.monotonic() + 10
    while (status := export(sandbox, limit=1, **rng).status_code) == 429 and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert status == 200


# --------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------


def test_injected_429_500_and_slow(sandbox) -> None:
    day = {"from_date": str(clock(sandbox).date()), "to_date": str(clock(sandbox).date())}
    sandbox.set_faults(rate_429=1.0, retry_after_seconds=3, vendors=["mixpanel"])
    r = export(sandbox, **day)
    assert_error(r, 429, "Rate limit")
    assert r.headers["Retry-After"] == "3"
    sandbox.set_faults(rate_500=1.0, vendors=["mixpanel"])
    assert_error(export(sandbox, **day), 500, "")
    sandbox.set_faults(rate_slow=1.0, slow_seconds=0.3, vendors=["mixpanel"])
    started = time.monotonic()
    assert export(sandbox, **day).status_code == 200
    assert time.monotonic() - started >= 0.3
    faults = sandbox.control("GET", "counters").json()["faults"]["mixpanel"]
    assert faults["429"] == 1 and faults["500"] == 1 and faults["slow"] == 1


def test_malformed_and_duplicate_lines(sandbox) -> None:
    rng = full_range(sandbox)
    clean = export(sandbox, **rng).text.splitlines()
    sandbox.set_faults(rate_malformed=0.05, vendors=["mixpanel"])
    mangled = export(sandbox, **rng).text.splitlines()
    assert len(mangled) == len(clean)
    broken = [line for line in mangled if not _is_json(line)]
    assert 0 < len(broken) < len(clean) // 5
    assert all(clean[i].startswith(line) for i, line in enumerate(mangled) if line in broken)

    sandbox.set_faults(rate_duplicate=0.05, vendors=["mixpanel"])
    doubled = lines(export(sandbox, **rng))
    ids = [e["properties"]["$insert_id"] for e in doubled]
    assert len(ids) > len(set(ids)) == len(clean)


@pytest.mark.parametrize("drift", ["added_field", "retyped_field"])
def test_schema_drift(sandbox, drift: str) -> None:
    day = {"from_date": str(clock(sandbox).date() - timedelta(days=1)), "to_date": str(clock(sandbox).date())}
    sandbox.set_faults(drift=drift, vendors=["mixpanel"])
    events = lines(export(sandbox, **day))
    assert events
    for e in events:
        if drift == "added_field":
            assert e["properties"]["sandbox_added_field"] == "sandbox drift"
        else:
            assert isinstance(e["properties"]["time"], str) and e["properties"]["time"].isdigit()


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True
