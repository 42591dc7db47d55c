"""The sync ledger: what each destination was sent, per audience and member, in the warehouse.

Tables in the warehouse's `activation` schema, created on first use:

- `sync_ledger`: the current state, one row per (destination, audience, customer_id): the
  email and payload last delivered (or attempted), its hash, the event id delivered with it,
  `state` (`member`: delivered and in the audience, an update refused since included, which
  keeps no hash and is sent again; `removed`; `rejected`: the vendor refused it, retried next
  run; `skipped`: the destination cannot take it without a subscription change), the vendor's
  error, how many runs in a row it failed, and when.
- `sync_log`: every attempt, append-only: run, action (add, update, remove, suppress), payload
  hash and payload, result and the vendor's per-record error. Dry runs write nothing.
- `audience_assignments`: each customer's entry into an audience (once per event id), and the
  group it was assigned: `treated` or `holdout`. The holdout mart reads it.
- `suppressions`: addresses Tessera suppressed on one platform because the person
  unsubscribed on another.
- `sync_runs`: each sync of an audience to a destination that went to its end, with its
  counts. Members in the ledger with no finished sync behind them are a first delivery cut off
  partway (a crash, a killed run), which the change guard treats as still the first.

The diff is against the ledger, not against the vendor: the vendor is asked only for changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from activation.destinations.base import Member, Outcome

SCHEMA = "activation"

DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.sync_ledger (
    destination varchar not null,
    audience varchar not null,
    customer_id varchar not null,
    email varchar,
    payload json,
    payload_hash varchar,
    event_id varchar,
    state varchar not null,
    last_error varchar,
    failed_runs integer not null default 0,
    first_delivered_at timestamptz,
    updated_at timestamptz not null,
    run_id varchar,
    primary key (destination, audience, customer_id)
);
create table if not exists {SCHEMA}.sync_log (
    run_id varchar not null,
    logged_at timestamptz not null,
    destination varchar not null,
    audience varchar not null,
    customer_id varchar,
    email varchar,
    action varchar not null,
    payload_hash varchar,
    payload json,
    result varchar not null,
    error varchar
);
create table if not exists {SCHEMA}.audience_assignments (
    audience varchar not null,
    customer_id varchar not null,
    assignment_key varchar not null,
    assignment_group varchar not null,
    holdout_share double not null,
    assigned_at timestamptz not null,
    run_id varchar,
    primary key (audience, customer_id, assignment_key)
);
create table if not exists {SCHEMA}.suppressions (
    destination varchar not null,
    customer_id varchar,
    email varchar not null,
    reason varchar,
    result varchar not null,
    error varchar,
    suppressed_at timestamptz not null,
    run_id varchar,
    primary key (destination, email)
);
create table if not exists {SCHEMA}.sync_runs (
    run_id varchar not null,
    destination varchar not null,
    audience varchar not null,
    finished_at timestamptz not null,
    added integer not null,
    updated integer not null,
    removed integer not null,
    rejected integer not null,
    skipped integer not null,
    primary key (run_id, destination, audience)
);
"""
# A ledger from before `sync_runs` existed: every audience it holds counts as delivered in full
# (its syncs ran to their end as far as anyone can tell), so the guard keeps guarding them.
BACKFILL_SYNC_RUNS = f"""
insert into {SCHEMA}.sync_runs
select 'before-sync-runs', destination, audience, max(updated_at), 0, 0, 0, 0, 0
from {SCHEMA}.sync_ledger group by destination, audience
"""


LEDGER_COLUMNS = (
    "destination",
    "audience",
    "customer_id",
    "email",
    "payload",
    "payload_hash",
    "event_id",
    "state",
    "last_error",
    "failed_runs",
    "first_delivered_at",
    "updated_at",
    "run_id",
)
LOG_COLUMNS = (
    "run_id",
    "logged_at",
    "destination",
    "audience",
    "customer_id",
    "email",
    "action",
    "payload_hash",
    "payload",
    "result",
    "error",
)
ASSIGNMENT_COLUMNS = (
    "audience",
    "customer_id",
    "assignment_key",
    "assignment_group",
    "holdout_share",
    "assigned_at",
    "run_id",
)
SUPPRESSION_COLUMNS = (
    "destination",
    "customer_id",
    "email",
    "reason",
    "result",
    "error",
    "suppressed_at",
    "run_id",
)


def insert_rows(conn: duckdb.DuckDBPyConnection, sql: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    """Run `sql` over `rows` given as a relation named `rows`: one columnar insert, where
    `executemany` would make one statement per row (minutes for a large audience)."""
    table = pa.Table.from_pylist([dict(zip(columns, r, strict=True)) for r in rows])
    conn.register("rows", table)
    try:
        conn.execute(sql)
    finally:
        conn.unregister("rows")


def ensure_ledger(conn: duckdb.DuckDBPyConnection) -> None:
    had_runs = conn.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = 'sync_runs'",
        [SCHEMA],
    ).fetchall()[0][0]
    conn.execute(DDL)
    if not had_runs:
        conn.execute(BACKFILL_SYNC_RUNS)


def record_finished_sync(
    conn: duckdb.DuckDBPyConnection, *, run_id: str, now: datetime, destination: str, audience: str, counts: dict
) -> None:
    """Mark this run's sync of `audience` to `destination` as gone to its end (a retry of the
    same run overwrites its own row)."""
    conn.execute(
        f"""insert or replace into {SCHEMA}.sync_runs
            values (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [run_id, destination, audience, now]
        + [counts[k] for k in ("added", "updated", "removed", "rejected", "skipped")],
    )


def has_finished_sync(conn: duckdb.DuckDBPyConnection, destination: str, audience: str) -> bool:
    return bool(
        conn.execute(
            f"select count(*) from {SCHEMA}.sync_runs where destination = ? and audience = ?",
            [destination, audience],
        ).fetchall()[0][0]
    )


def payload_of(member: Member) -> dict[str, Any]:
    return {"email": member.email, "properties": dict(member.properties), "event_id": member.event_id}


def payload_json(member: Member) -> str:
    # Sorted keys and fixed separators: the same member always hashes the same.
    return json.dumps(payload_of(member), sort_keys=True, separators=(",", ":"), default=str)


def payload_hash(member: Member) -> str:
    return hashlib.sha256(payload_json(member).encode()).hexdigest()


@dataclass(frozen=True)
class LedgerRow:
    customer_id: str
    email: str | None
    payload_hash: str | None
    event_id: str | None
    state: str
    failed_runs: int


def delivered_events(
    conn: duckdb.DuckDBPyConnection, destination: str, audience: str, event_ids: Iterable[str]
) -> set[str]:
    """Those of `event_ids` (a checkout's token) that `destination` took for `audience` at least
    once, for whichever customer or address: an audience with events sends each event once.
    Only tonight's candidates are looked up, so what comes back stays small however long the
    log grows."""
    wanted = sorted(set(event_ids))
    if not wanted:
        return set()
    rows = conn.execute(
        f"""select distinct event_id from (
                select json_extract_string(payload, '$.event_id') as event_id
                from {SCHEMA}.sync_log
                where destination = ? and audience = ? and result = 'ok' and action in ('add', 'update')
            ) as delivered
            where event_id in (select unnest(?::varchar[]))""",
        [destination, audience, wanted],
    ).fetchall()
    return {event_id for (event_id,) in rows}


def ledger_rows(conn: duckdb.DuckDBPyConnection, destination: str, audience: str) -> dict[str, LedgerRow]:
    rows = conn.execute(
        f"""select customer_id, email, payload_hash, event_id, state, failed_runs
            from {SCHEMA}.sync_ledger where destination = ? and audience = ?""",
        [destination, audience],
    ).fetchall()
    return {r[0]: LedgerRow(*r) for r in rows}


def record_outcomes(
    conn: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    now: datetime,
    destination: str,
    audience: str,
    action: str,
    members: Sequence[Member],
    outcomes: Sequence[Outcome],
) -> None:
    """Write what the vendor made of one call into the log and the current state, in one
    transaction, so a crash between calls loses at most the call in flight (resent next run,
    which the destinations make idempotent)."""
    by_email: dict[str, Outcome] = {o.email.lower(): o for o in outcomes}
    log_rows, state_rows = [], []
    for member in members:
        outcome = by_email.get(member.email.lower()) or Outcome(member.email, "rejected", "no answer for this record")
        body = payload_json(member)
        digest = payload_hash(member)
        log_rows.append(
            (run_id, now, destination, audience, member.customer_id, member.email, action, digest, body)
            + (outcome.status, outcome.error)
        )
        if action == "remove":
            # Nothing there to remove counts as removed; a refused removal is tried again.
            state = "member" if outcome.status == "rejected" else "removed"
        elif action == "update":
            # They were on the list before the call, and are still, whatever it answered: a
            # member they stay, so leaving the audience still removes them. A refused update
            # keeps no hash, and is sent again next run; a skipped one (the platform cannot
            # take it: not subscribed there now) keeps the new one, as asking again each night
            # would only be skipped again.
            state = "member"
            if outcome.status == "rejected":
                digest = None
        else:
            state = {"ok": "member", "rejected": "rejected", "skipped": "skipped"}[outcome.status]
        state_rows.append(
            (destination, audience, member.customer_id, member.email, body, digest, member.event_id, state)
            + (outcome.error, 0 if outcome.status == "ok" else 1, now if state == "member" else None, now, run_id)
        )
    conn.execute("begin transaction")
    try:
        if log_rows:
            insert_rows(conn, f"insert into {SCHEMA}.sync_log select * from rows", LOG_COLUMNS, log_rows)
        if state_rows:
            insert_rows(
                conn,
                f"""insert into {SCHEMA}.sync_ledger select * from rows
                    on conflict (destination, audience, customer_id) do update set
                        email = excluded.email,
                        payload = excluded.payload,
                        payload_hash = excluded.payload_hash,
                        event_id = excluded.event_id,
                        state = excluded.state,
                        last_error = excluded.last_error,
                        failed_runs = case when excluded.failed_runs = 0 then 0 else failed_runs + 1 end,
                        first_delivered_at = coalesce(first_delivered_at, excluded.first_delivered_at),
                        updated_at = excluded.updated_at,
                        run_id = excluded.run_id""",
                LEDGER_COLUMNS,
                state_rows,
            )
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise


def record_assignments(
    conn: duckdb.DuckDBPyConnection,
    rows: Iterable[tuple[str, str, str, str, float]],
    *,
    now: datetime,
    run_id: str,
) -> int:
    """(audience, customer_id, assignment_key, group, share): first entry wins, later runs
    never reassign the same entry."""
    values = [(*r, now, run_id) for r in rows]
    if not values:
        return 0
    before = conn.execute(f"select count(*) from {SCHEMA}.audience_assignments").fetchall()[0][0]
    insert_rows(
        conn,
        f"insert into {SCHEMA}.audience_assignments select * from rows on conflict do nothing",
        ASSIGNMENT_COLUMNS,
        values,
    )
    return conn.execute(f"select count(*) from {SCHEMA}.audience_assignments").fetchall()[0][0] - before
