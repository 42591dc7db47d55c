"""The sync engine against a small warehouse built here, with a destination that records calls.

The vendors' own behaviour (batches, limits, per-record errors) is tested against the sandbox
in the destinations' tests; here the question is only who is sent what, and when.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from activation.audiences import AudienceConfig
from activation.destinations.base import Audience, Member, Outcome
from activation.sync.engine import GuardTripped, sync_audience, sync_suppressions
from activation.sync.holdouts import is_held_out
from activation.sync.run import push

NOW = datetime(2026, 11, 1, tzinfo=UTC)


class RecordingDestination:
    """Takes every member, except the addresses told to refuse (once each)."""

    def __init__(self, name: str = "klaviyo", refuse: set[str] | None = None) -> None:
        self.name = name
        self.refuse = set(refuse or ())
        self.calls: list[tuple[str, list[str]]] = []
        self.members: dict[str, dict] = {}

    def _answer(self, emails: list[str]) -> list[Outcome]:
        out = []
        for email in emails:
            if email in self.refuse:
                self.refuse.discard(email)
                out.append(Outcome(email, "rejected", "Invalid email address"))
            else:
                out.append(Outcome(email, "ok"))
        return out

    def upsert(self, audience: Audience, members: list[Member]) -> list[Outcome]:
        self.calls.append(("upsert", [m.email for m in members]))
        outcomes = self._answer([m.email for m in members])
        for m, o in zip(members, outcomes, strict=True):
            if o.status == "ok":
                self.members[m.email] = dict(m.properties)
        return outcomes

    def remove(self, audience: Audience, members: list[Member]) -> list[Outcome]:
        self.calls.append(("remove", [m.email for m in members]))
        for m in members:
            self.members.pop(m.email, None)
        return [Outcome(m.email, "ok") for m in members]

    def suppress(self, emails: list[str]) -> list[Outcome]:
        self.calls.append(("suppress", list(emails)))
        return [Outcome(e, "ok") for e in emails]

    def erase(self, emails: list[str]) -> list[Outcome]:
        return [Outcome(e, "ok") for e in emails]

    @property
    def writes(self) -> int:
        return len(self.calls)


CONFIG = AudienceConfig(
    audience=Audience(name="seg_test", klaviyo_list="Test", mailchimp_tag="test", properties=("first_name", "orders")),
    schema="marts",
    table="seg_test",
    destinations=("klaviyo",),
    holdout_share=0.0,
    guard_min_changes=5,
    guard_max_change_share=0.5,
)


def _warehouse(n: int = 20) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    conn.execute("create schema marts")
    conn.execute(
        """create table marts.dim_customers as
           select 'c' || i as customer_id, 'known' as identity_status, 'p' || i || '@example.com' as email,
                  'subscribed' as email_consent_status, false as is_email_bounced,
                  false as has_marked_email_as_spam, null::varchar as unsubscribed_in
           from range(?) t(i)""",
        [n],
    )
    conn.execute(
        "create table marts.seg_test as select customer_id, email, 'Ann' as first_name, 1 as orders "
        "from marts.dim_customers"
    )
    conn.execute(
        """create table marts.customer_identifiers as
           select customer_id, s.source, 'email' as id_type, upper(email) as id_value
           from marts.dim_customers, (values ('klaviyo'), ('mailchimp')) s(source)"""
    )
    return conn


def _sync(conn, dest, config=CONFIG, run="r1", **kw):
    return sync_audience(conn, config, dest, run_id=run, now=NOW, **kw)


def test_first_run_adds_everyone_and_an_unchanged_rerun_sends_nothing():
    conn, dest = _warehouse(), RecordingDestination()
    first = _sync(conn, dest)
    assert (first.added, first.updated, first.removed) == (20, 0, 0)
    assert len(dest.members) == 20
    calls = dest.writes
    second = _sync(conn, dest, run="r2")
    assert second.planned_changes == 0 and second.unchanged == 20
    assert dest.writes == calls, "an unchanged audience must make no call"


@pytest.mark.parametrize(
    "change",
    [
        "email_consent_status = 'unsubscribed'",
        "email_consent_status = 'never_subscribed'",
        "is_email_bounced = true",
        "has_marked_email_as_spam = true",
        "identity_status = 'anonymous'",
        "email = null",
    ],
)
def test_consent_gate_never_sends_who_may_not_be_emailed_even_if_the_model_lets_them_in(change):
    conn, dest = _warehouse(), RecordingDestination()
    conn.execute(f"update marts.dim_customers set {change} where customer_id in ('c1', 'c2')")
    report = _sync(conn, dest)
    assert report.suppressed == 2
    assert {"p1@example.com", "p2@example.com"}.isdisjoint(dest.members)
    sent = {e for _, emails in dest.calls for e in emails}
    assert {"p1@example.com", "p2@example.com"}.isdisjoint(sent)


def test_erased_customers_are_never_sent_when_the_warehouse_flags_them():
    conn, dest = _warehouse(), RecordingDestination()
    conn.execute("alter table marts.dim_customers add column is_erased boolean default false")
    conn.execute("update marts.dim_customers set is_erased = true where customer_id = 'c3'")
    report = _sync(conn, dest)
    assert report.suppressed == 1 and "p3@example.com" not in dest.members


def test_who_leaves_consent_is_removed_and_only_changes_are_sent():
    conn, dest = _warehouse(), RecordingDestination()
    _sync(conn, dest)
    conn.execute("update marts.dim_customers set email_consent_status = 'unsubscribed' where customer_id = 'c4'")
    conn.execute("update marts.seg_test set orders = 2 where customer_id = 'c5'")
    conn.execute("update marts.seg_test set email = 'new5@example.com' where customer_id = 'c6'")
    conn.execute("update marts.dim_customers set email = 'new5@example.com' where customer_id = 'c6'")
    report = _sync(conn, dest, run="r2")
    assert (report.planned_adds, report.planned_updates, report.planned_removes) == (1, 1, 2)
    assert "p4@example.com" not in dest.members and "p6@example.com" not in dest.members
    assert dest.members["p5@example.com"]["orders"] == 2 and "new5@example.com" in dest.members
    sent = [e for kind, emails in dest.calls[1:] for e in emails if kind == "upsert"]
    assert sorted(sent) == ["new5@example.com", "p5@example.com"]


def test_a_refused_record_is_logged_and_sent_again_on_the_next_run():
    conn, dest = _warehouse(), RecordingDestination(refuse={"p7@example.com"})
    first = _sync(conn, dest)
    assert first.rejected == 1 and first.errors[0]["error"] == "Invalid email address"
    row = conn.execute(
        "select state, last_error, failed_runs from activation.sync_ledger where customer_id = 'c7'"
    ).fetchall()
    assert row == [("rejected", "Invalid email address", 1)]
    log = conn.execute("select result, error from activation.sync_log where customer_id = 'c7'").fetchall()
    assert log == [("rejected", "Invalid email address")]
    second = _sync(conn, dest, run="r2")
    assert (second.added, second.rejected) == (1, 0) and "p7@example.com" in dest.members
    assert conn.execute("select state from activation.sync_ledger where customer_id = 'c7'").fetchall() == [("member",)]


class _QuotingDestination(RecordingDestination):
    """Refuses as Mailchimp does, quoting the address in its error."""

    def _answer(self, emails: list[str]) -> list[Outcome]:
        return [
            Outcome(o.email, o.status, f"{o.email.upper()} looks fake or invalid, please enter a real email address.")
            if o.status == "rejected"
            else o
            for o in super()._answer(emails)
        ]


def test_the_error_sample_names_the_customer_not_the_address():
    # The sample is published as Dagster metadata, which erasures cannot reach.
    conn, dest = _warehouse(), _QuotingDestination(refuse={"p7@example.com"})
    report = _sync(conn, dest)
    assert report.rejected == 1
    assert report.errors == [
        {
            "action": "add",
            "customer_id": "c7",
            "error": "<email> looks fake or invalid, please enter a real email address.",
        }
    ]


def test_a_float_that_differs_only_in_its_last_bits_is_not_an_update():
    # A sum of doubles can come out of a parallel aggregation in another order on the next build.
    conn, dest = _warehouse(3), RecordingDestination()
    config = AudienceConfig(**{**CONFIG.__dict__, "audience": Audience("seg_test", "Test", "test", ("revenue",))})
    seg = "create or replace table marts.seg_test as select customer_id, email, {} as revenue from marts.dim_customers"
    conn.execute(seg.format("0.1::double + 0.2"))
    _sync(conn, dest, config)
    assert dest.members["p0@example.com"] == {"revenue": 0.3}
    calls = dest.writes
    conn.execute(seg.format("0.3::double"))
    assert _sync(conn, dest, config, run="r2").unchanged == 3 and dest.writes == calls
    conn.execute("update marts.seg_test set revenue = 0.31")
    assert _sync(conn, dest, config, run="r3").updated == 3


def test_the_guard_stops_an_implausible_change_before_anything_is_sent():
    conn, dest = _warehouse(), RecordingDestination()
    _sync(conn, dest)
    conn.execute("delete from marts.seg_test where customer_id not in ('c0', 'c1')")
    calls = dest.writes
    with pytest.raises(GuardTripped, match="18 changes .* exceeds the guard's 10"):
        _sync(conn, dest, run="r2")
    assert dest.writes == calls
    report = _sync(conn, dest, run="r3", confirm=True)
    assert report.removed == 18 and len(dest.members) == 2


def test_members_refused_last_time_are_retried_without_counting_against_the_guard():
    conn = _warehouse()
    refused = {f"p{i}@example.com" for i in range(8, 20)}
    first = _sync(conn, RecordingDestination(refuse=refused))
    assert (first.added, first.rejected) == (8, 12)
    # 12 retries against 8 members delivered is past the guard's 5, but nothing delivered changes.
    dest = RecordingDestination()
    again = _sync(conn, dest, run="r2")
    assert (again.added, again.planned_retries, again.guarded_changes) == (12, 12, 0)
    conn.execute("insert into marts.seg_test select 'n' || i, 'n' || i || '@example.com', 'Ann', 1 from range(21) t(i)")
    conn.execute(
        """insert into marts.dim_customers select customer_id, 'known', email, 'subscribed', false, false, null
           from marts.seg_test where customer_id like 'n%'"""
    )
    with pytest.raises(GuardTripped, match="21 changes .*not counting 0 retries.* exceeds the guard's 10"):
        _sync(conn, dest, run="r3")


class ListOnlyDestination(RecordingDestination):
    """Like Mailchimp: takes only the addresses on its list, skips everyone else."""

    def __init__(self, on_list: set[str]) -> None:
        super().__init__("mailchimp")
        self.on_list = on_list

    def upsert(self, audience: Audience, members: list[Member]) -> list[Outcome]:
        self.calls.append(("upsert", [m.email for m in members]))
        return [Outcome(m.email, "ok" if m.email in self.on_list else "skipped", None) for m in members]


def test_a_skipped_member_waits_until_the_platform_shows_them_subscribed():
    conn = _warehouse()
    conn.execute("alter table marts.dim_customers add column subscribed_in varchar")
    conn.execute("update marts.dim_customers set subscribed_in = 'klaviyo, mailchimp' where customer_id <> 'c3'")
    conn.execute("update marts.dim_customers set subscribed_in = 'klaviyo' where customer_id = 'c3'")
    dest = ListOnlyDestination({f"p{i}@example.com" for i in range(20) if i not in (3, 4)})
    first = _sync(conn, dest)
    assert (first.added, first.skipped) == (18, 2)
    # c4's own Mailchimp record says subscribed (a late signup): asked again; c3's does not.
    again = _sync(conn, dest, run="r2")
    assert (again.planned_retries, again.waiting) == (1, 1)
    assert dest.calls[-1] == ("upsert", ["p4@example.com"])
    # Once c3 subscribes there, the next night sends them.
    conn.execute("update marts.dim_customers set subscribed_in = 'mailchimp' where customer_id = 'c3'")
    dest.on_list.add("p3@example.com")
    third = _sync(conn, dest, run="r3")
    assert (third.added, third.waiting) == (1, 0) and "p3@example.com" in dest.calls[-1][1]


class CutOffDestination(RecordingDestination):
    """Takes the first call, then dies as a killed run would."""

    def upsert(self, audience: Audience, members: list[Member]) -> list[Outcome]:
        if self.calls:
            raise KeyboardInterrupt("killed")
        return super().upsert(audience, members)


def test_a_first_delivery_cut_off_partway_finishes_unconfirmed_and_then_the_guard_guards(monkeypatch):
    import activation.sync.engine as engine

    monkeypatch.setattr(engine, "CHUNK", 4)
    conn, dest = _warehouse(), CutOffDestination()
    with pytest.raises(KeyboardInterrupt):
        _sync(conn, dest)
    assert len(dest.members) == 4
    # 16 adds against 4 members delivered is past the guard's 5, but it is the same first delivery.
    rest = _sync(conn, RecordingDestination(), run="r2")
    assert (rest.added, rest.planned_changes) == (16, 16)
    conn.execute("delete from marts.seg_test where customer_id not in ('c0', 'c1')")
    with pytest.raises(GuardTripped, match="18 changes .* exceeds the guard's 10"):
        _sync(conn, RecordingDestination(), run="r3")


def test_a_ledger_from_before_finished_syncs_were_recorded_keeps_its_guard():
    conn, dest = _warehouse(), RecordingDestination()
    _sync(conn, dest)
    conn.execute("drop table activation.sync_runs")
    conn.execute("delete from marts.seg_test where customer_id not in ('c0', 'c1')")
    with pytest.raises(GuardTripped, match="18 changes"):
        _sync(conn, dest, run="r2")
    assert conn.execute("select run_id from activation.sync_runs").fetchall() == [("before-sync-runs",)]


def test_dry_run_reports_the_plan_and_sends_and_writes_nothing():
    conn, dest = _warehouse(), RecordingDestination()
    report = _sync(conn, dest, dry_run=True)
    assert report.planned_adds == 20 and len(report.sample["add"]) == 10
    assert dest.writes == 0
    assert conn.execute("select count(*) from activation.sync_ledger").fetchall() == [(0,)]
    assert conn.execute("select count(*) from activation.audience_assignments").fetchall() == [(0,)]


def test_holdouts_are_a_deterministic_share_never_sent_and_recorded_once():
    conn, dest = _warehouse(2000), RecordingDestination()
    config = AudienceConfig(**{**CONFIG.__dict__, "holdout_share": 0.1})
    report = _sync(conn, dest, config)
    held = {f"c{i}" for i in range(2000) if is_held_out("seg_test", f"c{i}", 0.1)}
    assert report.held_out == len(held) and 150 < len(held) < 250
    assert {f"p{c[1:]}@example.com" for c in held}.isdisjoint(dest.members)
    _sync(conn, dest, config, run="r2")
    groups = dict(
        conn.execute("select assignment_group, count(*) from activation.audience_assignments group by 1").fetchall()
    )
    assert groups == {"holdout": len(held), "treated": 2000 - len(held)}


def test_unsubscribes_carry_to_the_email_platforms_once():
    conn = _warehouse()
    conn.execute("update marts.dim_customers set unsubscribed_in = 'klaviyo' where customer_id = 'c8'")
    conn.execute("update marts.dim_customers set unsubscribed_in = 'hubspot, mailchimp' where customer_id = 'c9'")
    # Opted out only where the shop keeps its own records: both email platforms hear of it.
    conn.execute("update marts.dim_customers set unsubscribed_in = 'shopify' where customer_id = 'c10'")
    conn.execute("update marts.dim_customers set unsubscribed_in = 'hubspot' where customer_id = 'c11'")
    mailchimp, klaviyo = RecordingDestination("mailchimp"), RecordingDestination("klaviyo")
    assert sync_suppressions(conn, mailchimp, run_id="r1", now=NOW)["suppressed"] == 3
    assert sync_suppressions(conn, klaviyo, run_id="r1", now=NOW)["suppressed"] == 3
    assert mailchimp.calls == [("suppress", ["p10@example.com", "p11@example.com", "p8@example.com"])]
    assert klaviyo.calls == [("suppress", ["p10@example.com", "p11@example.com", "p9@example.com"])]
    assert sync_suppressions(conn, mailchimp, run_id="r2", now=NOW)["pending"] == 0


def test_push_goes_on_past_a_failing_destination_and_says_what_failed():
    class Down(RecordingDestination):
        def upsert(self, audience, members):
            raise ConnectionError("klaviyo: nobody answered")

    conn = _warehouse()
    mailchimp = RecordingDestination("mailchimp")
    config = AudienceConfig(**{**CONFIG.__dict__, "destinations": ("klaviyo", "mailchimp")})
    result = push(conn, [config], {"klaviyo": Down("klaviyo"), "mailchimp": mailchimp}, run_id="r1", now=NOW)
    assert not result.ok and result.failures == ["klaviyo/seg_test: klaviyo: nobody answered"]
    assert len(mailchimp.members) == 20


class AnsweringDestination(RecordingDestination):
    """Answers each listed address's next write with the given status, once."""

    def __init__(self, answers: dict[tuple[str, str], str] | None = None) -> None:
        super().__init__()
        self.answers = dict(answers or {})  # (call, email) -> "rejected" | "skipped"

    def _planned(self, call: str, members: list[Member]) -> tuple[list[Member], list[Outcome]]:
        passed, out = [], []
        for m in members:
            status = self.answers.pop((call, m.email), None)
            if status is None:
                passed.append(m)
            else:
                out.append(Outcome(m.email, status, f"{status} by the test"))
        return passed, out

    def upsert(self, audience: Audience, members: list[Member]) -> list[Outcome]:
        passed, out = self._planned("upsert", members)
        self.calls.append(("upsert", [m.email for m in members]))
        for m in passed:
            self.members[m.email] = dict(m.properties)
        return out + [Outcome(m.email, "ok") for m in passed]

    def remove(self, audience: Audience, members: list[Member]) -> list[Outcome]:
        passed, out = self._planned("remove", members)
        self.calls.append(("remove", [m.email for m in members]))
        for m in passed:
            self.members.pop(m.email, None)
        return out + [Outcome(m.email, "ok") for m in passed]


@pytest.mark.parametrize("answer", ["rejected", "skipped"])
def test_a_member_whose_update_failed_is_still_removed_when_they_leave(answer):
    conn, dest = _warehouse(4), AnsweringDestination()
    # The platforms' own subscription records, as loaded: none shows c1 subscribed on this one.
    conn.execute("alter table marts.dim_customers add column subscribed_in varchar")
    _sync(conn, dest)
    conn.execute("update marts.seg_test set orders = 2 where customer_id = 'c1'")
    dest.answers = {("upsert", "p1@example.com"): answer}
    assert _sync(conn, dest, run="r2").planned_updates == 1
    # A refused update is sent again; a skipped one (not subscribed there now) is not asked again.
    retried = _sync(conn, dest, run="r3")
    assert retried.planned_updates == (1 if answer == "rejected" else 0)
    conn.execute("delete from marts.seg_test where customer_id = 'c1'")
    left = _sync(conn, dest, run="r4")
    assert left.removed == 1 and "p1@example.com" not in dest.members


def test_a_new_address_waits_until_the_old_one_is_removed():
    conn, dest = _warehouse(4), AnsweringDestination()
    _sync(conn, dest)
    for table in ("seg_test", "dim_customers"):
        conn.execute(f"update marts.{table} set email = 'new1@example.com' where customer_id = 'c1'")
    dest.answers = {("remove", "p1@example.com"): "rejected"}
    report = _sync(conn, dest, run="r2")
    assert (report.rejected, report.held_for_removal) == (1, 1)
    assert "new1@example.com" not in dest.members and "p1@example.com" in dest.members
    # The ledger still knows the old address: the next run removes it, then adds the new one.
    report = _sync(conn, dest, run="r3")
    assert (report.removed, report.added, report.held_for_removal) == (1, 1, 0)
    assert "new1@example.com" in dest.members and "p1@example.com" not in dest.members


EVENT_CONFIG = AudienceConfig(
    audience=Audience(name="carts", klaviyo_list="Carts", properties=("first_name",), event="Abandoned Checkout"),
    schema="marts",
    table="carts",
    destinations=("klaviyo",),
    event_id_column="checkout_token",
    holdout_share=0.0,
    guard_min_changes=5,
)


def test_a_checkout_is_sent_once_whoever_it_comes_back_under():
    conn, dest = _warehouse(4), RecordingDestination()
    conn.execute(
        "create table marts.carts as select customer_id, email, 'Ann' as first_name, 'tok-' || customer_id "
        "as checkout_token from marts.dim_customers where customer_id in ('c1', 'c2')"
    )
    assert _sync(conn, dest, EVENT_CONFIG).added == 2
    # c1 came back to the checkout (it left the window's start), then left it again.
    conn.execute("delete from marts.carts where customer_id = 'c1'")
    assert _sync(conn, dest, EVENT_CONFIG, run="r2").removed == 1
    conn.execute("insert into marts.carts values ('c1', 'p1@example.com', 'Ann', 'tok-c1')")
    # c2's checkout now resolves to c3 (a merge of customer records).
    conn.execute("update marts.carts set customer_id = 'c3', email = 'p3@example.com' where customer_id = 'c2'")
    report = _sync(conn, dest, EVENT_CONFIG, run="r3")
    assert (report.already_sent, report.planned_adds, report.added) == (2, 0, 0)
    assert "p1@example.com" not in dest.members and "p3@example.com" not in dest.members
    # A new checkout is a new reminder.
    conn.execute("update marts.carts set checkout_token = 'tok-new' where customer_id = 'c1'")
    assert _sync(conn, dest, EVENT_CONFIG, run="r4").added == 1
