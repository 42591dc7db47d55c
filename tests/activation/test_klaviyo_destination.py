"""KlaviyoDestination against a live sandbox: what Klaviyo holds after each call, the counters
of what it received, and rate limits kept under faults."""

from __future__ import annotations

import gc
import json
import shutil
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from activation.destinations.base import Audience, Member
from activation.destinations.klaviyo import KlaviyoDestination
from activation.destinations.pacing import Window, WindowLimiter
from ingestion.common.errors import CredentialRejected
from tests.conftest import Sandbox, running_sandbox

REVISION = "2025-10-15"
METRIC = "Tessera Abandoned Checkout"


@pytest.fixture(scope="module")
def _klaviyo_sandbox(world_template, tmp_path_factory) -> Iterator[Sandbox]:
    """One private server for this module: its writes never reach other tests' world."""
    world = tmp_path_factory.mktemp("klaviyo-destination") / "world"
    shutil.copytree(world_template, world)
    with running_sandbox(world) as sandbox:
        yield sandbox


@pytest.fixture()
def sb(_klaviyo_sandbox) -> Iterator[Sandbox]:
    _klaviyo_sandbox.reset()
    yield _klaviyo_sandbox
    _klaviyo_sandbox.reset()


def _key(sb: Sandbox) -> str:
    return json.loads((sb.world / "world.json").read_text())["credentials"]["klaviyo"]["api_key"]


def _destination(sb: Sandbox) -> KlaviyoDestination:
    return KlaviyoDestination(sb.vendor_url("klaviyo"), _key(sb))


def _get(sb: Sandbox, path: str, **params) -> dict:
    headers = {"Authorization": f"Klaviyo-API-Key {_key(sb)}", "revision": REVISION}
    resp = requests.get(f"{sb.vendor_url('klaviyo')}{path}", params=params, headers=headers, timeout=30)
    resp.raise_for_status()
    return resp.json()


def _walk(sb: Sandbox, path: str, **params) -> list[dict]:
    out, cursor = [], None
    while True:
        page = _get(sb, path, **params, **({"page[cursor]": cursor} if cursor else {}))
        out += page["data"]
        nxt = page["links"].get("next")
        if not nxt:
            return out
        cursor = requests.utils.urlparse(nxt).query.split("page%5Bcursor%5D=")[-1].split("&")[0]
        cursor = requests.utils.unquote(cursor)


def _audience(tag: str) -> Audience:
    return Audience(name="abandoned_checkouts", klaviyo_list=f"Abandoned checkout {tag}", event=METRIC)


def _members(tag: str, n: int) -> list[Member]:
    return [
        Member(
            customer_id=f"c-{tag}-{i}",
            email=f"{tag}.{i}@example.com",
            properties={"cart_value": 40.0 + i, "cart_url": f"https://shop.example/cart/{tag}{i}"},
            event_id=f"checkout-{tag}-{i}",
        )
        for i in range(n)
    ]


def _profiles(sb: Sandbox, emails: list[str], **params) -> dict[str, dict]:
    found = {}
    for start in range(0, len(emails), 100):
        values = ",".join(f'"{e}"' for e in emails[start : start + 100])
        for p in _walk(sb, "/api/profiles", filter=f"any(email,[{values}])", **{"page[size]": 100}, **params):
            found[p["attributes"]["email"]] = p
    return found


def _list_id(sb: Sandbox, name: str) -> str:
    (found,) = _get(sb, "/api/lists", filter=f'equals(name,"{name}")')["data"]
    return found["id"]


def _list_member_ids(sb: Sandbox, name: str) -> set[str]:
    path = f"/api/lists/{_list_id(sb, name)}/relationships/profiles"
    return {p["id"] for p in _walk(sb, path, **{"page[size]": 100})}


def _event_count(sb: Sandbox) -> int:
    metrics = [m for m in _get(sb, "/api/metrics")["data"] if m["attributes"]["name"] == METRIC]
    if not metrics:
        return 0
    return len(_walk(sb, "/api/events", filter=f'equals(metric_id,"{metrics[0]["id"]}")', **{"page[size]": 1000}))


def _counters(sb: Sandbox) -> dict:
    return sb.control("GET", "counters").json()


def test_upsert_creates_profiles_with_properties_list_membership_and_one_event_each(sb) -> None:
    audience, members = _audience("up"), _members("up", 30)
    destination = _destination(sb)
    events_before = _event_count(sb)

    outcomes = destination.upsert(audience, members)

    assert [(o.email, o.status) for o in outcomes] == [(m.email, "ok") for m in members]
    profiles = _profiles(sb, [m.email for m in members])
    assert set(profiles) == {m.email for m in members}
    for m in members:
        assert profiles[m.email]["attributes"]["properties"]["cart_value"] == m.properties["cart_value"]
    assert {p["id"] for p in profiles.values()} <= _list_member_ids(sb, audience.klaviyo_list)
    assert _event_count(sb) == events_before + 30
    writes = _counters(sb)["writes"]["klaviyo"]
    assert writes["profile_bulk_import_job"] == 1 and writes["event_bulk_create_job"] == 1
    assert destination.requests >= 4 and destination.throttled == 0

    # The same push again (a rerun): no second event, no second profile, same membership.
    assert all(o.status == "ok" for o in destination.upsert(audience, members))
    assert _event_count(sb) == events_before + 30
    assert len(_profiles(sb, [m.email for m in members])) == 30
    assert len(_get(sb, "/api/lists", filter=f'equals(name,"{audience.klaviyo_list}")')["data"]) == 1
    assert "subscription_bulk_create_job" not in _counters(sb)["writes"]["klaviyo"]


def test_remove_takes_members_out_of_the_list_and_keeps_their_profiles(sb) -> None:
    audience, members = _audience("rm"), _members("rm", 10)
    destination = _destination(sb)
    destination.upsert(audience, members)

    outcomes = destination.remove(audience, members[:4])

    assert [o.status for o in outcomes] == ["ok"] * 4
    profiles = _profiles(sb, [m.email for m in members])
    assert len(profiles) == 10  # profiles and their properties stay
    kept = {profiles[m.email]["id"] for m in members[4:]}
    assert _list_member_ids(sb, audience.klaviyo_list) == kept
    assert _counters(sb)["writes"]["klaviyo"]["list_remove_profiles"] == 1


def test_suppress_marks_profiles_user_suppressed_without_touching_others(sb) -> None:
    audience, members = _audience("sup"), _members("sup", 3)
    destination = _destination(sb)
    destination.upsert(audience, members)

    emails = [members[0].email, members[1].email.upper(), "nobody.known@example.com"]
    outcomes = destination.suppress(emails)

    assert [o.status for o in outcomes] == ["ok"] * 3
    profiles = _profiles(sb, [m.email for m in members], **{"additional-fields[profile]": "subscriptions"})
    for member, suppressed in zip(members, (True, True, False), strict=True):
        marketing = profiles[member.email]["attributes"]["subscriptions"]["email"]["marketing"]
        reasons = [s["reason"] for s in marketing["suppression"]]
        assert ("USER_SUPPRESSED" in reasons) is suppressed
        if suppressed:
            assert marketing["can_receive_email_marketing"] is False
    assert _counters(sb)["writes"]["klaviyo"]["suppression_bulk_create_job"] == 1


def test_erase_deletes_the_profile_from_reads_and_lists(sb) -> None:
    audience, members = _audience("er"), _members("er", 2)
    destination = _destination(sb)
    destination.upsert(audience, members)
    erased_id = _profiles(sb, [members[0].email])[members[0].email]["id"]

    outcomes = destination.erase([members[0].email, "never.seen@example.com"])

    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert set(_profiles(sb, [m.email for m in members])) == {members[1].email}
    assert erased_id not in _list_member_ids(sb, audience.klaviyo_list)
    assert _counters(sb)["writes"]["klaviyo"]["data_privacy_deletion_job"] == 2


def test_with_faults_every_member_is_delivered_after_retry_passes_and_no_limit_is_exceeded(sb) -> None:
    audience, members = _audience("flt"), _members("flt", 200)
    sb.set_faults(rate_429=0.1, rate_500=0.1, rate_reject=0.2, seed=11, retry_after_seconds=0.5, vendors=["klaviyo"])
    destination = _destination(sb)

    outcomes = destination.upsert(audience, members)
    rejected = [o for o in outcomes if o.status == "rejected"]
    assert rejected, "rate_reject=0.2 over 200 profiles rejects some"
    assert all("rejected" in (o.error or "") for o in rejected)
    # Exactly the profiles Klaviyo refused, found by the import errors' original payload (their
    # pointer gives no place in the job): the others are in and were not held back.
    sb.control("DELETE", "faults")
    imported = set(_profiles(sb, [m.email for m in members]))
    assert {o.email for o in rejected} == {m.email for m in members} - imported
    sb.set_faults(rate_429=0.1, rate_500=0.1, rate_reject=0.2, seed=12, retry_after_seconds=0.5, vendors=["klaviyo"])
    passes = 1
    while rejected and passes < 6:  # the engine's next runs: only the rejected are sent again
        by_email = {m.email: m for m in members}
        outcomes = destination.upsert(audience, [by_email[o.email] for o in rejected])
        rejected = [o for o in outcomes if o.status == "rejected"]
        passes += 1
    assert not rejected, f"still rejected after {passes} passes: {rejected[:3]}"

    sb.control("DELETE", "faults")
    profiles = _profiles(sb, [m.email for m in members])
    assert len(profiles) == 200
    assert {p["id"] for p in profiles.values()} == _list_member_ids(sb, audience.klaviyo_list)
    assert _event_count(sb) >= 200  # every member's event (earlier tests add theirs too)
    counters = _counters(sb)
    assert counters["rate_limited"].get("klaviyo", 0) == 0
    assert counters["faults"]["klaviyo"]["reject"] > 0
    assert "subscription_bulk_create_job" not in counters["writes"]["klaviyo"]
    assert destination.retries > 0 and destination.throttled > 0


def test_pacing_holds_tight_limits_with_many_requests_in_flight(sb) -> None:
    """Both sides at 2 requests per second per endpoint: the concurrent import jobs, job polls
    and event requests are all paced, and the sandbox counts no violation."""
    tight = {"burst_m": {"limit": 2}, "burst_l": {"limit": 2}}
    sb.control("PUT", "limits", json={"klaviyo": tight})
    destination = KlaviyoDestination(
        sb.vendor_url("klaviyo"), _key(sb), first_import_size=100, tiers={"m": (Window(2, 1.0), Window(150, 60.0))}
    )
    members = _members("tight", 1200)  # 3 import jobs (100, 1,000, 100), 3 polls, 3 event requests

    started = time.monotonic()
    outcomes = destination.upsert(_audience("tight"), members)

    assert all(o.status == "ok" for o in outcomes)
    assert time.monotonic() - started >= 1.0  # the third request of an endpoint waits a window
    assert _counters(sb)["rate_limited"].get("klaviyo", 0) == 0
    assert destination.throttled == 0 and destination.retries == 0


def test_a_wrong_key_raises_the_credential_error_without_the_key(sb) -> None:
    secret = "pk_wrong_0123456789abcdef"
    destination = KlaviyoDestination(sb.vendor_url("klaviyo"), secret)
    with pytest.raises(CredentialRejected) as caught:
        destination.upsert(_audience("key"), _members("key", 1))
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    assert "API_KEY" in str(caught.value)


def test_the_window_limiter_spaces_any_limit_plus_one_requests_by_the_window() -> None:
    limiter = WindowLimiter([Window(3, 0.2), Window(5, 1.0)])
    sent: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(4):
            with limiter.slot():
                with lock:
                    sent.append(time.monotonic())
                time.sleep(0.01)  # the answer takes a moment

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent.sort()
    assert len(sent) == 12
    assert all(sent[i + 3] - sent[i] >= 0.2 for i in range(len(sent) - 3))
    assert all(sent[i + 5] - sent[i] >= 1.0 for i in range(len(sent) - 5))


def test_the_window_limiter_counts_any_answers_not_the_oldest_requests() -> None:
    """Of a burst of 2 (limit 2 per 0.2 s), the first request's answer is slow: the third
    request goes 0.2 s after the second one's answer, without waiting for the slow one."""
    limiter = WindowLimiter([Window(2, 0.2)])
    started = time.monotonic()
    slow = limiter.acquire()
    limiter.release(limiter.acquire())
    waiter = threading.Thread(target=lambda: limiter.release(limiter.acquire()))
    waiter.start()
    waiter.join(timeout=0.6)
    assert not waiter.is_alive(), "the third request waited for the slow answer"
    assert 0.2 <= time.monotonic() - started < 0.5
    limiter.release(slow)
    # Now two answers are fresh (the third's and the slow one's): the fourth waits for them.
    t = time.monotonic()
    limiter.release(limiter.acquire())
    assert time.monotonic() - t >= 0.19


def test_a_push_leaves_the_collector_as_it_found_it(sb) -> None:
    """A push keeps full collections off older objects only while it runs, and never thaws
    objects that something else froze (a server before forking)."""
    audience, members = _audience("gc"), _members("gc", 20)
    destination = _destination(sb)
    assert gc.get_freeze_count() == 0
    assert all(o.status == "ok" for o in destination.upsert(audience, members))
    assert gc.get_freeze_count() == 0

    gc.freeze()
    try:
        assert all(o.status == "ok" for o in destination.upsert(audience, members))
        assert gc.get_freeze_count() > 0  # still frozen (less what the push freed), not thawed
    finally:
        gc.unfreeze()


def test_a_cancelled_import_job_delivers_nobody_and_the_next_run_does(sb) -> None:
    audience, members = _audience("cnl"), _members("cnl", 5)
    sb.set_faults(rate_cancel_job=1.0, vendors=["klaviyo"])
    destination = _destination(sb)
    outcomes = destination.upsert(audience, members)
    assert {(o.status, o.error) for o in outcomes} == {("rejected", "Klaviyo cancelled the import job")}
    assert _profiles(sb, [m.email for m in members]) == {}
    assert _counters(sb)["faults"]["klaviyo"]["cancel"] == 1

    sb.control("DELETE", "faults")
    assert {o.status for o in destination.upsert(audience, members)} == {"ok"}
    profiles = _profiles(sb, [m.email for m in members])
    assert {p["id"] for p in profiles.values()} == _list_member_ids(sb, audience.klaviyo_list)
