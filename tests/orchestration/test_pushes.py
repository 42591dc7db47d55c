"""The push step: the email platforms served at once, each platform's audiences in turn, a
failed audience named without holding back the others, and the warehouse written one statement
at a time across the platforms' threads.

The sync itself (diff, consent, guard, ledger) has its own tests against the sandbox
(`tests/activation`); here it is stood in for, to see what the step does around it.
"""

from __future__ import annotations

import queue
import threading
from types import SimpleNamespace

import dagster as dg
import duckdb
import pytest
import requests

from activation.sync.engine import GuardTripped, SyncReport
from orchestration.defs.activation import pushes
from orchestration.resources import WarehouseResource


class _Platform:
    def __init__(self, name: str) -> None:
        self.name = name

    def close(self) -> None:
        pass


@pytest.fixture()
def platforms(monkeypatch):
    monkeypatch.setattr(pushes, "destinations_from_env", lambda names: {n: _Platform(n) for n in names})


def _materialize(tmp_path, selection=None):
    return dg.materialize(
        [pushes.audience_pushes],
        selection=selection,
        resources={"warehouse": WarehouseResource(data_dir=str(tmp_path))},
        raise_on_error=False,
    )


def _report(destination: str, audience: str) -> SyncReport:
    return SyncReport(destination=destination, audience=audience, dry_run=False, rows=1, added=1, planned_adds=1)


def test_the_platforms_are_pushed_to_at_the_same_time_each_audience_in_turn(tmp_path, platforms, monkeypatch):
    both_started = threading.Barrier(2, timeout=20)
    order: dict[str, list[str]] = {"klaviyo": [], "mailchimp": []}

    def sync_suppressions(conn, target, **kwargs):
        both_started.wait()  # fails (BrokenBarrierError) if the platforms are served one after another
        order[target.name].append("unsubscribes")
        return {"pending": 0, "suppressed": 0, "rejected": 0}

    def sync_audience(conn, audience, target, **kwargs):
        order[target.name].append(audience.name)
        return _report(target.name, audience.name)

    monkeypatch.setattr(pushes, "sync_suppressions", sync_suppressions)
    monkeypatch.setattr(pushes, "sync_audience", sync_audience)
    result = _materialize(tmp_path)

    assert result.success
    assert {m.asset_key for m in result.get_asset_materialization_events()} == {s.key for s in pushes.SPECS}
    for destination, done in order.items():
        expected = [a.name for a in pushes.audiences if destination in a.destinations]
        assert done == ["unsubscribes", *expected], "each platform's unsubscribes first, then its audiences in turn"


def test_a_failed_audience_is_named_and_the_others_are_delivered(tmp_path, platforms, monkeypatch):
    monkeypatch.setattr(
        pushes, "sync_suppressions", lambda conn, target, **kw: {"pending": 0, "suppressed": 0, "rejected": 0}
    )
    vip = pushes.push_key(SimpleNamespace(name="seg_vip_customers"), "mailchimp")

    def sync_audience(conn, audience, target, **kwargs):
        if (target.name, audience.name) == ("mailchimp", "seg_vip_customers"):
            report = _report(target.name, audience.name)
            report.planned_removes = 900
            raise GuardTripped(report, 100)
        return _report(target.name, audience.name)

    monkeypatch.setattr(pushes, "sync_audience", sync_audience)
    result = _materialize(tmp_path)

    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "activation/mailchimp/seg_vip_customers" in failure.event_specific_data.error.message
    assert "exceeds the guard's 100" in failure.event_specific_data.error.message
    delivered = {m.asset_key for m in result.get_asset_materialization_events()}
    assert delivered == {s.key for s in pushes.SPECS} - {vip}
    # A tripped guard trips again on a retry: the step is not retried.
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_an_error_quoting_a_key_reaches_neither_the_event_log_nor_the_failure(tmp_path, platforms, monkeypatch):
    monkeypatch.setattr(
        pushes, "sync_suppressions", lambda conn, target, **kw: {"pending": 0, "suppressed": 0, "rejected": 0}
    )

    def sync_audience(conn, audience, target, **kwargs):
        if target.name == "klaviyo":  # what requests raises for a key ending in a line break
            raise requests.exceptions.InvalidHeader(
                "Invalid leading whitespace, reserved character(s), or return character(s) in header "
                "value: 'Klaviyo-API-Key pk_0123456789abcdefSECRET\\r'"
            )
        return _report(target.name, audience.name)

    monkeypatch.setattr(pushes, "sync_audience", sync_audience)
    # Its retries would come minutes later and log the same: the first attempt is enough.
    monkeypatch.setattr(pushes.audience_pushes.op, "_retry_policy", None)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [pushes.audience_pushes],
            resources={"warehouse": WarehouseResource(data_dir=str(tmp_path))},
            raise_on_error=False,
            instance=instance,
        )
        logged = "\n".join(dg.serialize_value(entry) for entry in instance.all_logs(result.run_id))
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    published = logged + dg.serialize_value(failure)
    assert "InvalidHeader" in published and "activation/klaviyo/abandoned_checkouts" in published
    assert "SECRET" not in published and "pk_0123" not in published


def test_the_error_sample_is_published_redacted():
    report = _report("klaviyo", "seg_vip_customers")
    report.errors = [{"action": "add", "customer_id": "c7", "error": "refused: Bearer pk_0123456789abcdefSECRET"}]
    sample = pushes._push_metadata(report)["error_sample"].data
    assert sample == [{"action": "add", "customer_id": "c7", "error": "refused: Bearer ***"}]


def test_selecting_one_audience_pushes_only_it(tmp_path, platforms, monkeypatch):
    pushed = []
    monkeypatch.setattr(pushes, "sync_suppressions", lambda *a, **kw: pytest.fail("unsubscribes were not selected"))

    def sync_audience(conn, audience, target, **kwargs):
        pushed.append((target.name, audience.name))
        return _report(target.name, audience.name)

    monkeypatch.setattr(pushes, "sync_audience", sync_audience)
    key = dg.AssetKey(["activation", "klaviyo", "abandoned_checkouts"])
    result = _materialize(tmp_path, selection=[key])
    assert result.success
    assert pushed == [("klaviyo", "abandoned_checkouts")]
    assert [m.asset_key for m in result.get_asset_materialization_events()] == [key]


def test_a_platform_that_cannot_be_reached_fails_each_of_its_pushes_saying_why(monkeypatch):
    def destinations_from_env(names):
        if "mailchimp" in names:
            raise ValueError("ACTIVATION__MAILCHIMP__LIST_ID is not set")
        return {n: _Platform(n) for n in names}

    monkeypatch.setattr(pushes, "destinations_from_env", destinations_from_env)
    failed = []
    done: queue.Queue = queue.Queue()
    pushes._serve_destination(
        "mailchimp", [(dg.AssetKey("a"), None), (dg.AssetKey("b"), None)], "", threading.Lock(), done
    )
    while (outcome := done.get()) is not None:
        failed.append(outcome)
    assert [f.key for f in failed] == [dg.AssetKey("a"), dg.AssetKey("b")]
    assert all("mailchimp cannot be reached: ACTIVATION__MAILCHIMP__LIST_ID is not set" in f.error for f in failed)


def test_writes_from_the_platforms_threads_take_turns(tmp_path):
    # Both platforms' pushes of one audience record the same holdout assignments. Two
    # connections inserting the same keys at once meet DuckDB's constraint check; through the
    # shared lock they never overlap.
    warehouse = str(tmp_path / "warehouse.duckdb")
    with duckdb.connect(warehouse) as con:
        con.execute("CREATE TABLE assignments (audience VARCHAR, n INTEGER, PRIMARY KEY (audience, n))")
    lock, errors = threading.Lock(), []

    def record() -> None:
        with duckdb.connect(warehouse) as con:
            shared = pushes._OneStatementAtATime(con, lock)
            try:
                for r in range(60):
                    shared.execute(
                        f"INSERT INTO assignments SELECT 'vip', range FROM range({r * 50}, {r * 50 + 500}) "
                        "ON CONFLICT DO NOTHING"
                    )
            except duckdb.Error as error:
                errors.append(error)

    threads = [threading.Thread(target=record) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with duckdb.connect(warehouse) as con:
        assert con.execute("SELECT count(*) FROM assignments").fetchall() == [(59 * 50 + 500,)]


@pytest.mark.parametrize("launched", [{}, {"dry_run": True, "confirm_large_changes": True}])
def test_the_launchpads_dry_run_and_confirmation_reach_every_sync(tmp_path, platforms, monkeypatch, launched):
    """A dry run from the Launchpad sends nothing, anywhere; a confirmation lets a change past
    its guard; a run given neither sends, and stops at the guard."""
    calls: list[tuple[str, dict]] = []

    def sync_suppressions(conn, target, **kwargs):
        calls.append(("unsubscribes", kwargs))
        return {"pending": 0, "suppressed": 0, "rejected": 0}

    def sync_audience(conn, audience, target, **kwargs):
        calls.append((audience.name, kwargs))
        return _report(target.name, audience.name)

    monkeypatch.setattr(pushes, "sync_suppressions", sync_suppressions)
    monkeypatch.setattr(pushes, "sync_audience", sync_audience)
    result = dg.materialize(
        [pushes.audience_pushes],
        resources={"warehouse": WarehouseResource(data_dir=str(tmp_path))},
        run_config={"ops": {"audience_pushes": {"config": launched}}} if launched else None,
        tags={"tessera/now": "2026-11-20T03:00:00+00:00"},
    )
    assert result.success
    dry_run, confirm = launched.get("dry_run", False), launched.get("confirm_large_changes", False)
    assert len([name for name, _ in calls if name == "unsubscribes"]) == len(pushes.DESTINATIONS)
    assert len(calls) == len(pushes.SPECS)
    for name, kwargs in calls:
        assert kwargs["dry_run"] is dry_run, name
        assert kwargs["now"].isoformat() == "2026-11-20T03:00:00+00:00", name
        if name != "unsubscribes":
            assert kwargs["confirm"] is confirm, name
