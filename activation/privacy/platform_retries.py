"""Platform deletions that did not go through, kept until a platform confirms them.

An erasure deletes the person from the warehouse whatever the email platforms answer: one
platform down must not keep the warehouse holding them. But a platform that answered with an
error, or not at all, still holds the person, and the request is processed (its rows are gone,
so it cannot be resolved again). `privacy.platform_erasures_pending` keeps, per platform, the
addresses still to delete there: the least personal data that can finish the job (a platform
deletes by address), and only until the platform accepts the deletion. Every erasure run asks
again first (`erase.erase_requests`), and says what is still pending; an access request shows
the person their row here.

Only platforms Tessera is configured for are asked (and remembered). A platform without
settings on the night is named in the step's warnings and metadata, not remembered: keeping
addresses for a platform the shop may never connect would hold personal data for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import duckdb

from activation.destinations.base import Destination, email_key
from ingestion.common.erasure import TOMBSTONE_SCHEMA
from ingestion.common.redaction import redact

TABLE = f"{TOMBSTONE_SCHEMA}.platform_erasures_pending"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {TOMBSTONE_SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLE} (
    destination VARCHAR NOT NULL,
    email VARCHAR NOT NULL,
    request_id VARCHAR NOT NULL,
    error VARCHAR,
    attempts INTEGER NOT NULL,
    first_failed_at TIMESTAMPTZ NOT NULL,
    last_tried_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (destination, email)
);
"""

Failure = tuple[str, str, str, str]  # destination, email, request id, error


def ask_to_erase(destination: Destination, emails: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    """Ask one platform to delete `emails`: its answers counted by outcome, and why each address
    it did not accept was not (lower-cased). A refusal, an address left out of the answer, or
    an error for the whole call counts as not accepted; an answer of `skipped` does not."""
    try:
        outcomes = destination.erase(emails)
    except Exception as exc:  # one platform down must not keep the warehouse holding the person
        return {f"failed: {type(exc).__name__}": len(emails)}, dict.fromkeys(
            _keys(emails), f"{type(exc).__name__}: {exc}"
        )
    counts: dict[str, int] = {}
    why: dict[str, str] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if outcome.status == "rejected":
            why[email_key(outcome.email)] = outcome.error or outcome.status
    answered = {email_key(o.email) for o in outcomes}
    why.update((key, "no answer for this address") for key in _keys(emails) if key not in answered)
    return counts, why


def _keys(emails: Iterable[str]) -> list[str]:
    return [email_key(e) for e in emails]


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def remember(con: duckdb.DuckDBPyConnection, failures: Iterable[Failure]) -> None:
    """Keep these deletions for the next run (a second failure of an address counts an attempt).

    Errors are stored redacted: a platform's error can quote the request's Authorization header
    (requests does, for a key ending in a line break), and the row is shown to the person in
    their access export."""
    now = datetime.now(tz=UTC)
    # One row per platform and address (a person's addresses differ only in case, at times).
    by_key = {(d, email_key(e)): (request_id, redact(error)) for d, e, request_id, error in failures}
    rows = [[d, e, request_id, error, now] for (d, e), (request_id, error) in by_key.items()]
    if not rows:
        return
    ensure(con)
    con.executemany(
        f"""INSERT INTO {TABLE} VALUES (?, ?, ?, ?, 1, ?, ?)
            ON CONFLICT (destination, email) DO UPDATE SET
                error = excluded.error, attempts = attempts + 1, last_tried_at = excluded.last_tried_at""",
        [[*row, row[-1]] for row in rows],
    )


def pending(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """{destination: [(email, request id)]} still to delete there."""
    ensure(con)
    out: dict[str, list[tuple[str, str]]] = {}
    for destination, email, request_id in con.execute(
        f"SELECT destination, email, request_id FROM {TABLE} ORDER BY destination, first_failed_at, email"
    ).fetchall():
        out.setdefault(destination, []).append((email, request_id))
    return out


def waiting(warehouse: str) -> int:
    """How many platform deletions are still to go through."""
    with duckdb.connect(warehouse) as con:
        return sum(len(entries) for entries in pending(con).values())


def retry(
    warehouse: str,
    destinations: Sequence[Destination],
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, dict[str, int]]:
    """Ask each platform again to delete what it still holds; {destination: {"deleted": n,
    "still_pending": m}}. A platform not among `destinations` (not configured now) keeps its
    addresses for a later run."""
    with duckdb.connect(warehouse) as con:
        held = pending(con)
        results: dict[str, dict[str, int]] = {}
        for destination in destinations:
            entries = held.get(destination.name, [])
            if not entries:
                continue
            emails = [email for email, _ in entries]
            _, why = ask_to_erase(destination, emails)
            failed = [
                (destination.name, email, request_id, why[email]) for email, request_id in entries if email in why
            ]
            done = sorted(set(emails) - why.keys())
            if done:
                con.execute(
                    f"DELETE FROM {TABLE} WHERE destination = ? AND email IN (SELECT unnest(?::VARCHAR[]))",
                    [destination.name, done],
                )
            remember(con, failed)
            results[destination.name] = {"deleted": len(done), "still_pending": len(failed)}
            progress(f"{destination.name}: {len(done)} earlier deletion(s) now accepted, {len(failed)} still pending")
    return results
