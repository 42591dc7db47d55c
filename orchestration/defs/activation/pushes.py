"""Pushes: one asset per audience and destination, downstream of its dbt model, all
materialized by one step, `audience_pushes`, that serves each email platform in a thread of
its own.

Each destination first carries unsubscribes across platforms (`activation/<dest>/unsubscribes`),
then every audience that names it is synced (`activation/<dest>/<audience>`): only the changes
since the ledger's last delivery, consent first. The identity checks on `marts/customer_identifiers`
block: when one fails, no push of that night runs.

The platforms are served at once (a push mostly waits on the vendor's limits, and Klaviyo's
are not Mailchimp's); within one platform the audiences go one after another, through one
client, so its rate limits are kept in one place. Selecting some push assets (a rerun of one
audience) syncs only those.

A platform whose load is turned off (`SOURCES__<DEST>__ENABLED=false`, a shop that does not
use it) gets no push.

Run config (Launchpad): `dry_run` reports the plan and sends nothing; `confirm_large_changes`
lets a change larger than an audience's guard through (select the audience's asset alone to
confirm only that one).
"""

import queue
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dagster as dg
import duckdb

from activation.audiences import AudienceConfig, load_audiences
from activation.destinations.base import Destination
from activation.settings import destinations_from_env
from activation.sync.engine import GuardTripped, SyncReport, sync_audience, sync_suppressions
from ingestion.common.errors import setting
from ingestion.common.redaction import redact
from ingestion.raw_tables import vendor_enabled
from orchestration.defs.schedules import run_now
from orchestration.defs.transform.dbt import dbt_project
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.retries import VENDOR_CALL_RETRY

DESTINATIONS = ("klaviyo", "mailchimp")
# Every push waits for these and for their blocking checks (a blocking check holds back only
# the assets that depend on its asset directly): the identity map, the consent-bearing customer
# table, the checkouts the abandonment audience is cut from, and the night's erasures.
GATES = [
    dg.AssetKey(["marts", "customer_identifiers"]),
    dg.AssetKey(["marts", "dim_customers"]),
    dg.AssetKey(["marts", "fct_checkouts"]),
    dg.AssetKey(["privacy", "erased_identifiers"]),
]


class PushConfig(dg.Config):
    dry_run: bool = False
    confirm_large_changes: bool = False


def unsubscribes_key(destination: str) -> dg.AssetKey:
    return dg.AssetKey(["activation", destination, "unsubscribes"])


def push_key(audience: AudienceConfig, destination: str) -> dg.AssetKey:
    return dg.AssetKey(["activation", destination, audience.name])


def _unsubscribes_spec(destination: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        unsubscribes_key(destination),
        group_name="activation",
        kinds={destination},
        deps=GATES,
        description=(
            f"Unsubscribes and spam complaints learned from any other platform (the other email "
            f"platform, Shopify, HubSpot), suppressed in "
            f"{destination.title()} (only ever away from subscribed), once per address."
        ),
    )


def _push_spec(audience: AudienceConfig, destination: str) -> dg.AssetSpec:
    where = audience.audience.klaviyo_list if destination == "klaviyo" else audience.audience.mailchimp_tag
    return dg.AssetSpec(
        push_key(audience, destination),
        group_name="activation",
        kinds={destination},
        deps=[dg.AssetKey(["marts", audience.name]), *GATES, unsubscribes_key(destination)],
        description=(
            f"`marts.{audience.name}` kept in sync with {destination.title()} ({where!r}): adds, updates and "
            f"removals since the last push, consented customers only, {audience.holdout_share:.0%} held out."
        ),
        metadata={"audience": audience.name, "destination": destination, "target": where},
    )


class _OneStatementAtATime:
    """A thread's own DuckDB connection whose statements take turns with the other threads'
    (one `lock` for all): two platforms' pushes of one audience record the same holdout
    assignments, and two overlapping writes of one row would meet DuckDB's write conflict.
    The vendor calls between statements still run at once."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, lock: threading.Lock) -> None:
        self._conn = conn
        self._lock = lock

    def execute(self, *args: Any, **kwargs: Any) -> "_OneStatementAtATime":
        with self._lock:
            self._conn.execute(*args, **kwargs)
        return self

    def __getattr__(self, name: str) -> Any:  # fetchall, register, description, ...
        return getattr(self._conn, name)


@dataclass
class _Done:
    """One push asset's outcome, handed from a platform's thread to the step's."""

    key: dg.AssetKey
    metadata: dict[str, Any] | None = None
    logs: list[tuple[str, str]] | None = None  # (level, message) for the step's log
    error: str | None = None  # why it failed; None when it succeeded
    guard: bool = False  # stopped by its guard (a retry would stop again)


def _suppressions(conn: Any, target: Destination, context_values: dict, config: PushConfig) -> _Done:
    counts = sync_suppressions(conn, target, dry_run=config.dry_run, **context_values)
    logs = [("info", f"{target.name}: {counts}")]
    if counts["rejected"]:
        logs.append(("warning", f"{target.name}: {counts['rejected']} suppressions refused; retried next run"))
    return _Done(unsubscribes_key(target.name), {**counts, "dry_run": config.dry_run}, logs)


def _push(conn: Any, target: Destination, audience: AudienceConfig, context_values: dict, config: PushConfig) -> _Done:
    key = push_key(audience, target.name)
    try:
        report = sync_audience(
            conn,
            audience,
            target,
            dry_run=config.dry_run,
            confirm=config.confirm_large_changes,
            **context_values,
        )
    except GuardTripped as exc:
        return _Done(key, error=str(exc), guard=True)
    verb = "would be" if report.dry_run else "were"
    log = (
        f"{target.name}/{audience.name}: {report.planned_adds} adds, {report.planned_updates} updates, "
        f"{report.planned_removes} removals {verb} sent; {report.rejected} rejected, {report.skipped} skipped"
    )
    return _Done(key, _push_metadata(report), [("info", log)])


def _push_metadata(report: SyncReport) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "rows": report.rows,
        "adds": report.planned_adds if report.dry_run else report.added,
        # Of the adds: members refused or skipped last time, sent again.
        "retries": report.planned_retries,
        # Skipped last time and still not subscribed on that platform: not sent again.
        "waiting": report.waiting,
        # Their event (a checkout) was sent to that platform before: not sent again.
        "already_sent": report.already_sent,
        # A new address held back while the old one's removal is refused: tried again next run.
        "held_for_removal": report.held_for_removal,
        "updates": report.planned_updates if report.dry_run else report.updated,
        "removals": report.planned_removes if report.dry_run else report.removed,
        "unchanged": report.unchanged,
        "errors": report.rejected,
        "skipped": report.skipped,
        "suppressed": report.suppressed,
        "held_out": report.held_out,
        "error_sample": dg.MetadataValue.json([{**e, "error": redact(e["error"])} for e in report.errors]),
    }


def _serve_destination(
    destination: str,
    work: list[tuple[dg.AssetKey, Callable[[Any, Destination], _Done]]],
    warehouse: str,
    lock: threading.Lock,
    done: "queue.Queue[_Done | None]",
) -> None:
    """Run one platform's selected pushes in order through one client; each outcome goes to
    `done` as it ends, then None. A push that fails does not stop the ones after it."""
    try:
        target = destinations_from_env([destination])[destination]
    except Exception as exc:  # a missing setting: every push of this platform fails, saying why
        for key, _ in work:
            done.put(_Done(key, error=f"{destination} cannot be reached: {exc}"))
        done.put(None)
        return
    with closing(target), duckdb.connect(warehouse) as conn:
        shared = _OneStatementAtATime(conn, lock)
        for key, run in work:
            try:
                done.put(run(shared, target))
            except Exception as exc:
                done.put(_Done(key, error="".join(traceback.format_exception(exc))))
    done.put(None)


def _turned_off(context: dg.AssetExecutionContext, destination: str) -> Iterator[dg.MaterializeResult]:
    """A platform the shop does not use (its load turned off): nothing is pushed there. Its
    members' unsubscribes and bounces would not be loaded either, so a push could not honour them."""
    # The unsubscribes first: every audience of the platform depends on them.
    keys = sorted(
        (k for k in context.selected_asset_keys if tuple(k.path[:2]) == ("activation", destination)),
        key=lambda k: (k != unsubscribes_key(destination), k.to_user_string()),
    )
    if not keys:
        return
    variable = setting(destination, "enabled")
    context.log.info(f"{destination}: turned off ({variable}=false), nothing pushed there")
    for key in keys:
        yield dg.MaterializeResult(asset_key=key, metadata={"turned_off": dg.MetadataValue.text(f"{variable}=false")})


SPECS = [_unsubscribes_spec(d) for d in DESTINATIONS]
audiences = load_audiences(dbt_project.manifest_path)
SPECS += [_push_spec(a, d) for a in audiences for d in DESTINATIONS if d in a.destinations]


@dg.multi_asset(
    name="audience_pushes",
    specs=SPECS,
    can_subset=True,
    pool=WAREHOUSE_POOL,
    retry_policy=VENDOR_CALL_RETRY,
)
def audience_pushes(
    context: dg.AssetExecutionContext, config: PushConfig, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    selected = context.selected_asset_keys
    now: datetime = run_now(context.run)
    values = {"run_id": context.run.run_id, "now": now}
    work: dict[str, list] = {}
    for destination in DESTINATIONS:
        if not vendor_enabled(destination):
            yield from _turned_off(context, destination)
            continue
        steps = []
        if unsubscribes_key(destination) in selected:
            steps.append(
                (unsubscribes_key(destination), lambda conn, target: _suppressions(conn, target, values, config))
            )
        for audience in audiences:
            if push_key(audience, destination) in selected:
                steps.append(
                    (
                        push_key(audience, destination),
                        lambda conn, target, a=audience: _push(conn, target, a, values, config),
                    )
                )
        if steps:
            work[destination] = steps
    context.log.info(f"pushing to {', '.join(work)} at once; each platform's audiences one after another")
    lock = threading.Lock()
    done: queue.Queue[_Done | None] = queue.Queue()
    for destination, steps in work.items():
        threading.Thread(
            target=_serve_destination,
            args=(destination, steps, str(warehouse.path), lock, done),
            name=f"push-{destination}",
            daemon=True,
        ).start()
    failed: list[_Done] = []
    running = len(work)
    while running:
        outcome = done.get()
        if outcome is None:
            running -= 1
            continue
        if outcome.error is not None:
            # A vendor client's error can quote a request's Authorization header (requests does,
            # for a key ending in a line break): the event log and the Failure get it redacted.
            outcome.error = redact(outcome.error)
            context.log.error(f"{outcome.key.to_user_string()}: {outcome.error}")
            failed.append(outcome)
            continue
        for level, line in outcome.logs or []:
            getattr(context.log, level)(line)
        yield dg.MaterializeResult(asset_key=outcome.key, metadata=outcome.metadata)
    if failed:
        # A tripped guard trips again on a retry: it waits for someone to confirm.
        raise dg.Failure(
            description="; ".join(f"{f.key.to_user_string()}: {f.error.splitlines()[-1]}" for f in failed),
            metadata={"failed": dg.MetadataValue.json({f.key.to_user_string(): f.error for f in failed})},
            allow_retries=not all(f.guard for f in failed),
        )


push_assets = [audience_pushes]
