"""Sandbox server core: state, clock, faults, rate limits, counters, destinations, control API.

Runs on a tiny hand-made world and a throwaway vendor ("fake") registered programmatically,
so it does not depend on the world generator or on the real vendor modules.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import types
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from sandbox.server import state as state_module
from sandbox.server.app import create_app, load_vendor_modules
from sandbox.server.auth import basic_auth, bearer_token, matches, read_json
from sandbox.server.faults import ADDED_FIELD, BAD_TIMESTAMP, FaultConfig, FaultInjector, unit
from sandbox.server.ratelimit import RateLimiter
from sandbox.server.state import SandboxState, strip_hidden

TOKEN = "fake-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """World with clock 2024-01-03, horizon 2024-01-05 and six rows created one per day from
    2024-01-01 12:00 (two visible at the initial clock)."""
    (tmp_path / "store").mkdir()
    meta = {
        "seed": 42,
        "customers": 10,
        "days": 5,
        "start": "2024-01-01T00:00:00Z",
        "clock": "2024-01-03T00:00:00Z",
        "horizon": "2024-01-05T00:00:00Z",
        "credentials": {"fake": {"token": TOKEN}},
        "ids": {},
    }
    (tmp_path / "world.json").write_text(json.dumps(meta))
    created = [datetime(2024, 1, 1 + i, 12, tzinfo=UTC) for i in range(6)]
    table = pa.table(
        {
            "id": pa.array(range(1, 7), pa.int64()),
            "value": pa.array([10, 20, 30, 40, 50, 60], pa.int64()),
            "created_at": pa.array(created, pa.timestamp("us", tz="UTC")),
            "_person_id": pa.array([f"p{i}" for i in range(6)]),
        }
    )
    pq.write_table(table, tmp_path / "store" / "fake_things.parquet")
    # The fake vendor has no default limits; give it a generous rule through limits.json.
    rule = {"kind": "window", "limit": 1000, "seconds": 60}
    (tmp_path / "limits.json").write_text(json.dumps({"fake": {"calls": rule}}))
    return tmp_path


def fake_error_response(status: int, retry_after: float | None) -> Response:
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
    return JSONResponse({"fake_error": {"code": status}}, status_code=status, headers=headers)


def fake_mount(state: SandboxState) -> Mount:
    def things(request):
        token = bearer_token(request)
        if not matches(token, state.credentials("fake").get("token")):
            return fake_error_response(401, None)
        allowed, retry_after, info = state.limits.hit("fake", "calls", token or "")
        if not allowed:
            return fake_error_response(429, retry_after)
        offset = int(request.query_params.get("offset", "0"))
        rows = state.query(
            "SELECT * FROM fake_things WHERE created_at <= ? ORDER BY id LIMIT 2 OFFSET ?",
            [state.clock, offset],
        )
        records = [strip_hidden({**r, "created_at": r["created_at"].isoformat()}) for r in rows]
        records = state.faults.apply_record_faults("fake", "things", records, page_key=str(offset))
        return JSONResponse({"results": records}, headers={"X-Remaining": str(info.remaining)})

    def push(request):
        body = read_json(request)
        state.destinations.record("fake", "event", body["id"], body)
        state.destinations.upsert("fake", "profile", body["id"], body, merge=True)
        return JSONResponse({"ok": True}, status_code=202)

    def boom(request):
        raise RuntimeError("boom")

    # The path of the returned Mount is ignored: the server mounts it under /fake.
    return Mount(
        "/ignored",
        routes=[
            Route("/things", things),
            Route("/push", push, methods=["POST"]),
            Route("/boom", boom),
        ],
    )


FAKE = SimpleNamespace(mount=fake_mount, error_response=fake_error_response)


@pytest.fixture
def truth_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, datetime]]:
    """Replace sandbox.world.truth with a recorder (the real writer may not exist yet)."""
    calls: list[tuple[Path, datetime]] = []
    module = types.ModuleType("sandbox.world.truth")
    module.write_truth = lambda world_dir, clock: calls.append((Path(world_dir), clock))
    monkeypatch.setitem(sys.modules, "sandbox.world.truth", module)
    return calls


@pytest.fixture
def client(world: Path):
    with TestClient(create_app(world, vendors={"fake": FAKE})) as c:
        yield c


# --------------------------------------------------------------------------------------------
# state, clock, control
# --------------------------------------------------------------------------------------------


def test_health_and_clock_gated_rows_without_hidden_columns(client: TestClient) -> None:
    health = client.get("/_sandbox/health").json()
    assert health["ok"] and health["seed"] == 42 and health["customers"] == 10
    assert health["vendors"] == ["fake"] and health["tables"] == ["fake_things"]
    assert health["clock"] == "2024-01-03T00:00:00Z"

    assert client.get("/fake/things").status_code == 401
    records = client.get("/fake/things", headers=AUTH).json()["results"]
    assert [r["id"] for r in records] == [1, 2]  # rows created after the clock are invisible
    assert all(not k.startswith("_") for r in records for k in r)


def test_clock_advance_rewrites_truth_and_refuses_past_horizon(
    client: TestClient, world: Path, truth_calls: list
) -> None:
    assert client.get("/_sandbox/clock").json()["horizon"] == "2024-01-05T00:00:00Z"
    r = client.post("/_sandbox/clock/advance", json={})  # default: one day
    assert r.status_code == 200, r.text
    assert r.json()["clock"] == "2024-01-04T00:00:00Z" and r.json()["previous"] == "2024-01-03T00:00:00Z"
    assert truth_calls == [(world, datetime(2024, 1, 4, tzinfo=UTC))]
    assert json.loads((world / "world.json").read_text())["clock"] == "2024-01-04T00:00:00Z"
    assert [x["id"] for x in client.get("/fake/things", headers=AUTH).json()["results"]] == [1, 2]
    assert [x["id"] for x in client.get("/fake/things?offset=2", headers=AUTH).json()["results"]] == [3]

    refused = client.post("/_sandbox/clock/advance", json={"days": 2})
    assert refused.status_code == 409 and "horizon" in refused.json()["error"]
    assert client.post("/_sandbox/clock/advance", json={"days": 1}).json()["clock"] == "2024-01-05T00:00:00Z"
    assert client.post("/_sandbox/clock/advance").status_code == 409
    assert client.post("/_sandbox/clock/advance", json={"days": -1}).status_code == 400
    assert len(truth_calls) == 2
    assert SandboxState(world).clock == datetime(2024, 1, 5, tzinfo=UTC)  # persisted


def test_failed_truth_rewrite_leaves_clock_unchanged(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("sandbox.world.truth")

    def broken(world_dir, clock):
        raise OSError("disk full")

    module.write_truth = broken
    monkeypatch.setitem(sys.modules, "sandbox.world.truth", module)
    r = client.post("/_sandbox/clock/advance", json={"days": 1})
    assert r.status_code == 500 and "disk full" in r.json()["error"]
    assert client.get("/_sandbox/clock").json()["clock"] == "2024-01-03T00:00:00Z"


def test_unhandled_vendor_error_is_vendor_shaped_500(client: TestClient) -> None:
    r = client.get("/fake/boom")
    assert r.status_code == 500 and r.json() == {"fake_error": {"code": 500}}
    assert client.get("/_sandbox/counters").json()["responses"]["fake"]["500"] == 1


def test_missing_vendor_module_is_skipped_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert load_vendor_modules(("no_such_vendor",)) == {}
    assert "no_such_vendor" in caplog.text


def test_auth_helpers(client: TestClient) -> None:
    request = SimpleNamespace(headers={"authorization": "Basic dXNlcjpzZWNyZXQ="})
    assert basic_auth(request) == ("user", "secret")
    assert bearer_token(request) is None
    assert basic_auth(SimpleNamespace(headers={"authorization": "Basic !!!"})) is None
    assert not matches(None, "x") and matches("x", "x")


# --------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------


def test_fault_config_round_trip(client: TestClient, world: Path) -> None:
    assert client.get("/_sandbox/faults").json() == FaultConfig().to_dict()
    body = {
        "rate_429": 0.1,
        "rate_slow": 0.2,
        "slow_seconds": 0.5,
        "drift": "added_field",
        "seed": 3,
        "vendors": ["fake"],
    }
    r = client.put("/_sandbox/faults", json=body)
    assert r.status_code == 200 and r.json() == {**FaultConfig().to_dict(), **body}
    assert client.get("/_sandbox/faults").json() == r.json()
    assert SandboxState(world).faults.config == FaultConfig.from_dict(body)  # persisted
    assert client.put("/_sandbox/faults", json={"rate_429": 2}).status_code == 400
    assert client.put("/_sandbox/faults", json={"drift": "sideways"}).status_code == 400
    assert client.put("/_sandbox/faults", json={"bogus": 1}).status_code == 400
    assert client.delete("/_sandbox/faults").json() == FaultConfig().to_dict()


def test_injected_errors_are_deterministic_vendor_shaped_and_spare_control(client: TestClient) -> None:
    config = {"rate_429": 0.3, "rate_500": 0.2, "seed": 7, "retry_after_seconds": 2}

    def run() -> list[int]:
        client.put("/_sandbox/faults", json=config)  # restarts the request numbering
        return [client.get("/fake/things", headers=AUTH).status_code for _ in range(40)]

    first = run()
    assert first == run()
    expected = []
    for n in range(40):
        u = unit(7, "request", "fake", n)
        expected.append(429 if u < 0.3 else 500 if u < 0.5 else 200)
    assert first == expected and {200, 429, 500} <= set(first)

    client.put("/_sandbox/faults", json={"rate_429": 1.0, "retry_after_seconds": 2})
    r = client.get("/fake/things", headers=AUTH)
    assert r.status_code == 429 and r.json() == {"fake_error": {"code": 429}}
    assert r.headers["Retry-After"] == "2"
    client.put("/_sandbox/faults", json={"rate_500": 1.0})
    r = client.get("/fake/things", headers=AUTH)
    assert r.status_code == 500 and r.json() == {"fake_error": {"code": 500}}
    assert client.get("/_sandbox/health").status_code == 200  # never faulted

    client.put("/_sandbox/faults", json={"rate_slow": 1.0, "slow_seconds": 0.2})
    t0 = time.monotonic()
    assert client.get("/fake/things", headers=AUTH).status_code == 200
    assert time.monotonic() - t0 >= 0.2

    faults = client.get("/_sandbox/counters").json()["faults"]["fake"]
    assert faults["429"] == 2 * first.count(429) + 1 and faults["slow"] == 1


def test_record_faults_duplicates_across_pages_deterministically() -> None:
    page1 = [{"id": i, "updated_at": "2024-01-01T00:00:00Z", "value": i * 10} for i in range(10)]
    page2 = [{"id": i, "updated_at": "2024-01-01T00:00:00Z", "value": i * 10} for i in range(10, 20)]
    outputs = []
    for _ in range(2):
        faults = FaultInjector(None)
        faults.set(FaultConfig(rate_duplicate=0.5, seed=1))
        out1 = faults.apply_record_faults("v", "things", page1, "0")
        out2 = faults.apply_record_faults("v", "things", page2, "10")
        outputs.append((out1, out2))
    assert outputs[0] == outputs[1]
    out1, out2 = outputs[0]
    assert out1 == page1  # no previous page yet
    dups = [r for i, r in enumerate(page1) if unit(1, "duplicate", "v", "things", "10", i) < 0.5]
    assert dups and out2 == dups + page2


def test_record_faults_malformed_and_drift() -> None:
    records = [{"id": i, "attributes": {"updated": "2024-01-01T00:00:00Z", "score": i}} for i in range(20)]
    original = json.loads(json.dumps(records))
    faults = FaultInjector(None)
    faults.set(FaultConfig(rate_malformed=1.0, seed=5))
    bad = faults.apply_record_faults("v", "profiles", records, "p1")
    assert records == original  # input untouched
    null_ids = [r for r in bad if r["id"] is None]
    bad_ts = [r for r in bad if r["attributes"]["updated"] == BAD_TIMESTAMP]
    assert null_ids and bad_ts and len(null_ids) + len(bad_ts) == 20
    assert bad == faults.apply_record_faults("v", "profiles", records, "p1")

    faults.set(FaultConfig(drift="added_field"))
    assert all(r[ADDED_FIELD] for r in faults.apply_record_faults("v", "profiles", records, "p1"))
    faults.set(FaultConfig(drift="retyped_field"))
    retyped = faults.apply_record_faults("v", "profiles", records, "p1")
    assert [r["attributes"]["score"] for r in retyped] == [str(i) for i in range(20)]
    assert [r["id"] for r in retyped] == list(range(20))  # the primary key is never retyped

    faults.set(FaultConfig(rate_malformed=1.0, vendors=("other",)))
    assert faults.apply_record_faults("v", "profiles", records, "p1") == records


def test_mangle_jsonl_line() -> None:
    line = json.dumps({"event": "Product Viewed", "properties": {"time": 1700000000, "distinct_id": "d1"}})
    faults = FaultInjector(None)
    assert faults.mangle_jsonl_line(line, 0) == line
    faults.set(FaultConfig(rate_malformed=1.0))
    truncated = faults.mangle_jsonl_line(line, 0)
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated)
    faults.set(FaultConfig(rate_duplicate=1.0))
    assert faults.mangle_jsonl_line(line, 3) == [line, line]
    faults.set(FaultConfig(drift="retyped_field"))
    assert json.loads(faults.mangle_jsonl_line(line, 0))["properties"]["time"] == "1700000000"
    faults.set(FaultConfig(rate_malformed=0.3, rate_duplicate=0.3, seed=9))
    once = [faults.mangle_jsonl_line(line, i, stream_key="2024-01-01") for i in range(50)]
    assert once == [faults.mangle_jsonl_line(line, i, stream_key="2024-01-01") for i in range(50)]
    assert any(isinstance(x, list) for x in once) and any(x != line and isinstance(x, str) for x in once)


# --------------------------------------------------------------------------------------------
# rate limits
# --------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_sliding_window_limiter() -> None:
    clock, violations = FakeClock(), []
    limiter = RateLimiter(on_violation=violations.append, clock=clock)
    limiter.configure({"hubspot": {"burst": {"limit": 3}}})
    for expected_remaining in (2, 1, 0):
        allowed, retry, info = limiter.hit("hubspot", "burst", "tok")
        assert allowed and retry == 0 and info.remaining == expected_remaining
        clock.t += 1
    allowed, retry, info = limiter.hit("hubspot", "burst", "tok")
    assert not allowed and retry == pytest.approx(7.0) and violations == ["hubspot"]
    assert limiter.hit("hubspot", "burst", "other-token").allowed  # keys are independent
    clock.t += 7.01
    assert limiter.hit("hubspot", "burst", "tok").allowed


def test_fixed_windows_checked_together() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    rules = ["burst_m", "steady_m"]  # Klaviyo M: 10/s burst, 150/m steady
    assert all(limiter.hit("klaviyo", rules, "acct").allowed for _ in range(10))
    refused = limiter.hit("klaviyo", rules, "acct")
    assert not refused.allowed and refused.info.rule == "burst_m" and 0 < refused.retry_after <= 1
    clock.t += 1
    allowed, _, info = limiter.hit("klaviyo", rules, "acct")
    assert allowed and info.rule == "burst_m"  # the rule with the fewest remaining requests
    steady = limiter.hit("klaviyo", "steady_m", "acct").info
    assert steady.used == 12  # the refused request was not counted by the steady window


def test_leaky_bucket_limiter() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    decisions = [limiter.hit("shopify", "rest", "shop") for _ in range(40)]
    assert all(d.allowed for d in decisions)
    assert limiter.bucket_header(decisions[0].info) == "1/40"
    assert limiter.bucket_header(decisions[-1].info) == "40/40"
    refused = limiter.hit("shopify", "rest", "shop")
    assert not refused.allowed and refused.retry_after == pytest.approx(0.5)
    clock.t += 0.5
    assert limiter.hit("shopify", "rest", "shop").allowed
    clock.t += 10  # leaks 20
    assert limiter.bucket_header(limiter.hit("shopify", "rest", "shop").info) == "21/40"


def test_concurrency_limiter() -> None:
    violations: list[str] = []
    limiter = RateLimiter(on_violation=violations.append)
    limiter.configure({"mailchimp": {"connections": {"limit": 2}}})
    slot = limiter.slot
    with slot("mailchimp", "connections", "key") as a, slot("mailchimp", "connections", "key") as b:
        assert a.allowed and b.allowed
        with limiter.slot("mailchimp", "connections", "key") as c:
            assert not c.allowed and c.retry_after > 0
        assert limiter.slot("mailchimp", "connections", "other").__enter__().allowed
    with limiter.slot("mailchimp", "connections", "key") as d:
        assert d.allowed  # slots were released
    assert violations == ["mailchimp"]


def test_limits_persist_and_apply_over_http(client: TestClient, world: Path) -> None:
    with pytest.raises(ValueError):
        RateLimiter().configure({"hubspot": {"burst": {"limit": 0}}})
    override = {"fake": {"calls": {"kind": "window", "limit": 2, "seconds": 3600}}}
    r = client.put("/_sandbox/limits", json=override)
    assert r.status_code == 200 and r.json()["overrides"] == override
    assert r.json()["effective"]["shopify"]["rest"]["capacity"] == 40
    assert [client.get("/fake/things", headers=AUTH).status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/_sandbox/counters").json()["rate_limited"] == {"fake": 1}
    assert RateLimiter(world / "limits.json").overrides == override
    assert client.put("/_sandbox/limits", json={"fake": {"calls": {"kind": "nope"}}}).status_code == 400


# --------------------------------------------------------------------------------------------
# persistence: counters and destinations
# --------------------------------------------------------------------------------------------


def test_counters_persist_across_restart(world: Path) -> None:
    with TestClient(create_app(world, vendors={"fake": FAKE})) as c:
        for _ in range(3):
            c.get("/fake/things", headers=AUTH)
        c.get("/fake/things")
        c.post("/fake/push", json={"id": "a", "email": "a@example.com"})
    # No read, no flush interval passed: shutdown must have flushed.
    snapshot = SandboxState(world).counters.snapshot()
    assert snapshot["requests"] == {"fake": 5}
    assert snapshot["responses"] == {"fake": {"200": 3, "401": 1, "202": 1}}
    assert snapshot["writes"] == {"fake": {"event": 1}}

    with TestClient(create_app(world, vendors={"fake": FAKE})) as c:
        c.get("/fake/things", headers=AUTH)
        assert c.get("/_sandbox/counters").json()["requests"] == {"fake": 6}
        assert c.post("/_sandbox/counters/reset").json()["requests"] == {}
    assert SandboxState(world).counters.snapshot()["requests"] == {}


def test_deferred_writes_leave_no_thread_or_connection_behind(world: Path, monkeypatch) -> None:
    # The writer thread exits when idle and a write starts another; each one's SQLite
    # connection must go with it, or a long-served sandbox runs out of file descriptors.
    monkeypatch.setattr(state_module, "_WRITER_IDLE_SECONDS", 0.05)
    dest = SandboxState(world).destinations
    for n in range(10):
        dest.write_behind("klaviyo", "profile", [(f"p{n}", "{}", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z")])
        dest.settle()
        deadline = time.monotonic() + 5
        while dest._writer is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dest._writer is None, "the idle writer thread did not exit"
    assert dest.count("klaviyo", "profile") == 10
    assert len(dest._all) <= 1  # at most this thread's own connection


def test_closing_the_store_ends_its_idle_writer_at_once(world: Path) -> None:
    # A writer thread still waiting when the server exits keeps the store, and through `now`
    # the state's DuckDB connection, alive at interpreter exit: DuckDB's bindings then print a
    # wall of "nanobind: leaked instance" lines at the end of the demo.
    dest = SandboxState(world).destinations
    dest.write_behind("klaviyo", "profile", [("p1", "{}", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z")])
    dest.settle()
    writer = dest._writer
    assert writer is not None and writer.is_alive()  # idle, waiting for more
    started = time.monotonic()
    dest.close()
    assert not writer.is_alive()
    assert time.monotonic() - started < state_module._WRITER_IDLE_SECONDS / 2
    dest.write_behind("klaviyo", "profile", [("p2", "{}", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z")])
    dest.settle()
    assert dest.count("klaviyo", "profile") == 2  # usable again after close


def test_every_kind_of_write_moves_that_kinds_generation_and_reads_do_not(world: Path) -> None:
    dest = SandboxState(world).destinations
    seen = [dest.generation("mailchimp", "member")]

    def moved() -> bool:
        seen.append(dest.generation("mailchimp", "member"))
        return seen[-1] != seen[-2]

    dest.upsert("mailchimp", "member", "L:a", {"status": "subscribed"})
    assert moved()
    dest.upsert_many("mailchimp", "member", [("L:b", {}), ("L:c", {})])
    assert moved()
    dest.write_behind("mailchimp", "member", [("L:d", "{}", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z")])
    assert moved()
    assert [o.key for o in dest.list_objects("mailchimp", "member")] == ["L:a", "L:b", "L:c", "L:d"]
    dest.get("mailchimp", "member", "L:a")
    assert not moved()
    dest.upsert("klaviyo", "profile", "p1", {})
    assert not moved()
    dest.delete("mailchimp", "member", "L:a")
    assert moved()


def test_destinations_store_persists(world: Path) -> None:
    state = SandboxState(world)
    dest = state.destinations
    obj, created = dest.upsert("klaviyo", "list", "L1", {"name": "Abandoned checkout (24h)"})
    assert created and obj.created_at == "2024-01-03T00:00:00Z"
    _, created = dest.upsert("klaviyo", "list", "L1", {"profile_count": 0}, merge=True)
    assert not created
    stored = dest.get("klaviyo", "list", "L1")
    assert stored.payload == {"name": "Abandoned checkout (24h)", "profile_count": 0}
    for member in ("p1", "p2", "p3"):
        dest.upsert("klaviyo", "list_member", f"L1:{member}", {"profile": member})
        dest.record("klaviyo", "list_add", f"L1:{member}", {"profile": member})
    dest.upsert("klaviyo", "list_member", "L2:p9", {"profile": "p9"})
    assert dest.delete("klaviyo", "list_member", "L1:p2")
    assert not dest.delete("klaviyo", "list_member", "nope")
    members = dest.list_objects("klaviyo", "list_member", key_prefix="L1:")
    assert [o.key for o in members] == ["L1:p1", "L1:p3"]
    assert dest.count("klaviyo", "list_member") == 3

    # concurrent writers from many threads
    def write(n: int) -> None:
        for i in range(25):
            dest.upsert("mailchimp", "member", f"{n}-{i}", {"n": n, "i": i})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert dest.count("mailchimp", "member") == 200
    state.close()

    again = SandboxState(world)
    assert again.destinations.get("klaviyo", "list", "L1").payload["profile_count"] == 0
    assert again.destinations.count("mailchimp", "member") == 200
    log = again.destinations.received("klaviyo", "list_add")
    assert [r["key"] for r in log] == ["L1:p1", "L1:p2", "L1:p3"]
    assert log[0]["received_at"] == "2024-01-03T00:00:00Z"  # the world clock, not the wall clock
    assert again.counters.snapshot()["writes"] == {"klaviyo": {"list_add": 3}}


def test_received_and_objects_endpoints(client: TestClient) -> None:
    assert client.post("/fake/push", json={"id": "a", "email": "a@example.com"}).status_code == 202
    assert client.post("/fake/push", json={"id": "a", "tier": "gold"}).status_code == 202
    received = client.get("/_sandbox/received", params={"vendor": "fake", "kind": "event"}).json()
    assert received["count"] == 2 and received["items"][1]["payload"] == {"id": "a", "tier": "gold"}
    objects = client.get("/_sandbox/objects", params={"vendor": "fake", "kind": "profile"}).json()
    assert objects["items"][0]["payload"] == {"id": "a", "email": "a@example.com", "tier": "gold"}
    assert client.get("/_sandbox/received", params={"vendor": "other"}).json()["count"] == 0


def test_erasure_requests_follow_the_clock(private_sandbox):
    import duckdb

    store = private_sandbox.world / "store" / "erasure_requests.parquet"
    first = private_sandbox.control("GET", "erasure-requests").json()
    clock = private_sandbox.control("GET", "clock").json()["clock"]
    expected = duckdb.sql(f"SELECT count(*) FROM '{store}' WHERE requested_at <= '{clock}'::TIMESTAMPTZ").fetchall()
    assert first["count"] == expected[0][0]
    assert all(item["requested_at"] <= clock for item in first["items"])
    private_sandbox.control("POST", "clock/advance", json={"days": 14})
    later = private_sandbox.control("GET", "erasure-requests").json()
    assert later["count"] >= first["count"]
