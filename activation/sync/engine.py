"""Sync one audience to one destination: consent gate, holdout draw, diff, guard, send, ledger.

    report = sync_audience(conn, audience, klaviyo, run_id=..., now=...)

Only the difference from the ledger is sent: a second run over unchanged data sends nothing.
Records the vendor refuses stay out of the ledger's members and are sent again next run. A
change larger than the audience's guard allows stops before anything is sent, until confirmed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

import duckdb

from activation.audiences import AudienceConfig
from activation.destinations.base import Destination, Member, Outcome
from activation.sync.ledger import (
    SCHEMA,
    SUPPRESSION_COLUMNS,
    delivered_events,
    ensure_ledger,
    has_finished_sync,
    insert_rows,
    ledger_rows,
    record_assignments,
    record_finished_sync,
    record_outcomes,
)
from activation.sync.plan import Plan, desired_members, diff, hold_sent_events, hold_skipped

log = logging.getLogger("tessera.activation")

CHUNK = 10_000  # members per destination call: the ledger is written after each


class GuardTripped(RuntimeError):
    """A sync whose change is implausibly large for the audience; nothing was sent."""

    def __init__(self, report: SyncReport, limit: int) -> None:
        self.report = report
        super().__init__(
            f"{report.destination}/{report.audience}: {report.guarded_changes} changes "
            f"({report.planned_adds - report.planned_retries} adds, {report.planned_updates} updates, "
            f"{report.planned_removes} removals; not counting {report.planned_retries} retries of members "
            f"refused or skipped before) against {report.previous_members} members delivered before "
            f"exceeds the guard's {limit}; "
            "nothing was sent. Check the audience's data; if the change is right, run again with "
            "confirm_large_changes (Dagster run config) or --confirm (CLI)."
        )


@dataclass
class SyncReport:
    destination: str
    audience: str
    dry_run: bool
    rows: int = 0  # rows of the audience model
    suppressed: int = 0  # refused by the consent gate
    held_out: int = 0
    previous_members: int = 0
    planned_adds: int = 0
    planned_updates: int = 0
    planned_removes: int = 0
    planned_retries: int = 0  # of the adds: members refused or skipped last time, sent again
    waiting: int = 0  # skipped last time and still not subscribed there: not sent again
    already_sent: int = 0  # their event (a checkout) was sent before: not sent again
    # A new address not added, as the old one's removal was refused: tried again next run.
    held_for_removal: int = 0
    unchanged: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    rejected: int = 0
    skipped: int = 0
    # A sample of the vendor's per-record errors: {"action", "customer_id", "error"}, without the
    # address (the sample is published as Dagster metadata, which an erasure does not reach).
    errors: list[dict[str, str]] = field(default_factory=list)
    sample: dict[str, list[str]] = field(default_factory=dict)  # dry run: a few emails per action

    @property
    def planned_changes(self) -> int:
        return self.planned_adds + self.planned_updates + self.planned_removes

    @property
    def guarded_changes(self) -> int:
        """The changes the guard weighs: a retry changes nothing the destination holds."""
        return self.planned_changes - self.planned_retries

    def as_dict(self) -> dict:
        return asdict(self)


def guard_limit(config: AudienceConfig, previous_members: int, delivered_before: bool = True) -> int | None:
    """The most changes a sync may make unconfirmed: the larger of `guard_min_changes` and
    `guard_max_change_share` of the members delivered before (retries of members refused or
    skipped before do not count against it: they change nothing the destination holds).
    None for a first delivery, which is all adds by nature, including one cut off partway
    (`delivered_before` false: no sync of the audience has gone to its end), whose remainder
    would otherwise look like an implausible change against the part that got through."""
    if previous_members == 0 or not delivered_before:
        return None
    return max(config.guard_min_changes, int(config.guard_max_change_share * previous_members))


def _chunks(members: Sequence[Member]):
    size = CHUNK
    for start in range(0, len(members), size):
        yield members[start : start + size]


_DONE = {"add": "added", "update": "updated", "remove": "removed"}
_ADDRESS = re.compile(r"[\w.%+'-]+@[\w-]+(?:\.[\w-]+)+")


def _tally(report: SyncReport, action: str, members: Sequence[Member], outcomes: Sequence[Outcome]) -> None:
    customer_of = {m.email.lower(): m.customer_id for m in members}
    for outcome in outcomes:
        if outcome.status == "ok":
            setattr(report, _DONE[action], getattr(report, _DONE[action]) + 1)
        elif outcome.status == "rejected":
            report.rejected += 1
            if len(report.errors) < 20:
                report.errors.append(
                    {
                        "action": action,
                        "customer_id": customer_of.get(outcome.email.lower(), ""),
                        # Vendors quote the address ("x@y.com looks fake or invalid").
                        "error": _ADDRESS.sub("<email>", outcome.error or ""),
                    }
                )
        else:
            report.skipped += 1


def sync_audience(
    conn: duckdb.DuckDBPyConnection,
    config: AudienceConfig,
    destination: Destination,
    *,
    run_id: str,
    now: datetime,
    dry_run: bool = False,
    confirm: bool = False,
) -> SyncReport:
    ensure_ledger(conn)
    desired = desired_members(conn, config)
    ledger = ledger_rows(conn, destination.name, config.name)
    plan: Plan = diff(desired.members, ledger)
    hold_skipped(plan, desired, ledger, destination.name)
    if config.event_id_column:
        candidates = (m.event_id for m in plan.adds if m.event_id)
        hold_sent_events(plan, ledger, delivered_events(conn, destination.name, config.name, candidates))
    report = SyncReport(
        destination=destination.name,
        audience=config.name,
        dry_run=dry_run,
        rows=desired.rows,
        suppressed=len(desired.suppressed),
        held_out=len(desired.held_out),
        previous_members=plan.previous_members,
        planned_adds=len(plan.adds),
        planned_updates=len(plan.updates),
        planned_removes=len(plan.removes),
        planned_retries=plan.retries,
        waiting=plan.waiting,
        already_sent=plan.already_sent,
        unchanged=plan.unchanged,
    )
    limit = guard_limit(config, plan.previous_members, has_finished_sync(conn, destination.name, config.name))
    if dry_run:
        report.sample = {
            "add": [m.email for m in plan.adds[:10]],
            "update": [m.email for m in plan.updates[:10]],
            "remove": [m.email for m in plan.removes[:10]],
        }
        return report
    if limit is not None and report.guarded_changes > limit and not confirm:
        raise GuardTripped(report, limit)

    # Intention to treat: everyone the audience selected is assigned a group the first time
    # they enter it (per event, for audiences with events), sent or not.
    share = config.holdout_share
    record_assignments(
        conn,
        [(config.name, m.customer_id, m.event_id or "", "treated", share) for m in desired.members.values()]
        + [(config.name, c, key, "holdout", share) for c, key in desired.held_out.items()],
        now=now,
        run_id=run_id,
    )
    common = dict(run_id=run_id, now=now, destination=destination.name, audience=config.name)
    readdressed = {m.customer_id for m in plan.adds}
    held: set[str] = set()
    for chunk in _chunks(plan.removes):
        outcomes = destination.remove(config.audience, chunk)
        record_outcomes(conn, action="remove", members=chunk, outcomes=outcomes, **common)
        _tally(report, "remove", chunk, outcomes)
        # A new address waits while the old one's removal is refused: the ledger holds one
        # address per member, and would otherwise forget the old one still on the list.
        removed = {o.email.lower() for o in outcomes if o.status != "rejected"}
        held |= {m.customer_id for m in chunk if m.customer_id in readdressed and m.email.lower() not in removed}
    report.held_for_removal = len(held)
    adds = [m for m in plan.adds if m.customer_id not in held]
    updating = {m.customer_id for m in plan.updates}
    for chunk in _chunks(adds + plan.updates):
        outcomes = destination.upsert(config.audience, chunk)
        by_email = {o.email.lower(): o for o in outcomes}
        for action, members in (
            ("add", [m for m in chunk if m.customer_id not in updating]),
            ("update", [m for m in chunk if m.customer_id in updating]),
        ):
            if members:
                mine = [by_email[m.email.lower()] for m in members if m.email.lower() in by_email]
                record_outcomes(conn, action=action, members=members, outcomes=mine, **common)
                _tally(report, action, members, mine)
    record_finished_sync(conn, **common, counts=asdict(report))
    log.info(
        "%s/%s: %d added, %d updated, %d removed, %d rejected, %d skipped (%d more waiting), %d suppressed, "
        "%d held out, %d already sent, %d waiting on a removal",
        destination.name,
        config.name,
        report.added,
        report.updated,
        report.removed,
        report.rejected,
        report.skipped,
        report.waiting,
        report.suppressed,
        report.held_out,
        report.already_sent,
        report.held_for_removal,
    )
    return report


# The platforms Tessera suppresses addresses on; an unsubscribe or spam complaint recorded on
# any other platform Tessera loads (the other email platform, Shopify, HubSpot) is carried there.
EMAIL_PLATFORMS = ("klaviyo", "mailchimp")


def pending_suppressions(conn: duckdb.DuckDBPyConnection, destination: str) -> list[tuple[str, str, str]]:
    """(customer_id, email, why) for addresses this destination holds whose person unsubscribed
    or complained on another platform (the other email platform, the shop's own Shopify
    customer record, HubSpot) and that Tessera has not suppressed here yet."""
    ensure_ledger(conn)
    if destination not in EMAIL_PLATFORMS:
        return []
    return conn.execute(
        f"""
        with customers as (
            select customer_id, unsubscribed_in, string_split(coalesce(unsubscribed_in, ''), ', ') as platforms
            from marts.dim_customers
        )
        select distinct
            customers.customer_id,
            lower(trim(identifiers.id_value)) as email,
            'unsubscribed in ' || customers.unsubscribed_in as why
        from customers
        inner join marts.customer_identifiers as identifiers
            on customers.customer_id = identifiers.customer_id
        where identifiers.source = $destination and identifiers.id_type = 'email'
          and len(list_filter(customers.platforms, lambda p: p not in ('', $destination))) > 0
          and not list_contains(customers.platforms, $destination)
          and lower(trim(identifiers.id_value)) not in (
              select email from {SCHEMA}.suppressions where destination = $destination and result = 'ok'
          )
        order by email
        """,
        {"destination": destination},
    ).fetchall()


def sync_suppressions(
    conn: duckdb.DuckDBPyConnection,
    destination: Destination,
    *,
    run_id: str,
    now: datetime,
    dry_run: bool = False,
) -> dict[str, int]:
    """Carry unsubscribes across platforms: an unsubscribe or complaint learned from any other
    platform suppresses the person on this one (only ever away from subscribed)."""
    pending = pending_suppressions(conn, destination.name)
    if dry_run or not pending:
        return {"pending": len(pending), "suppressed": 0, "rejected": 0}
    outcomes = {o.email.lower(): o for o in destination.suppress([email for _, email, _ in pending])}
    rows = []
    for customer_id, email, why in pending:
        outcome = outcomes.get(email) or Outcome(email, "rejected", "no answer for this record")
        rows.append((destination.name, customer_id, email, why, outcome.status, outcome.error, now, run_id))
    insert_rows(
        conn,
        f"""insert into {SCHEMA}.suppressions select * from rows
            on conflict (destination, email) do update set result = excluded.result, error = excluded.error,
                suppressed_at = excluded.suppressed_at, run_id = excluded.run_id""",
        SUPPRESSION_COLUMNS,
        rows,
    )
    done = sum(1 for r in rows if r[4] == "ok")
    return {"pending": len(pending), "suppressed": done, "rejected": len(rows) - done}
