"""Erasure: a person removed from the warehouse, the files beside it and every email platform.

For a batch of requests, in one transaction: resolve each request's person (`person.resolve_all`),
delete their rows from every table (raw tables with their dlt child rows and dlt's merge staging
copies, dbt-built tables, the activation ledger, quarantine tables; `rows.delete_rows`; and the
request's own row) while every destination is asked to delete them (`Destination.erase`),
tombstone their hashed identifiers so no later load brings them back, and log each request. Each
step reads a table once for the whole batch, so a backlog of a thousand requests costs little
more than one. Then: the warehouse file rewritten without the freed blocks that still held the
deleted rows, completed dlt load packages deleted, pending ones scrubbed, the analysts' copy
republished from the cleaned warehouse and its leftovers removed.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from activation.destinations.base import Destination
from activation.privacy import files, platform_retries, tombstone
from activation.privacy.person import Person, has_table, parse_identifiers, resolve_all
from activation.privacy.rows import Deleted, delete_rows
from ingestion.common.erasure import identifier_hash

REQUESTS_TABLE = "raw_privacy.erasure_requests"
PROGRESS_SECONDS = 30.0


@dataclass(frozen=True)
class ErasureRequest:
    request_id: str
    email: str | None
    requested_at: Any = None
    identifiers: tuple[str, ...] = ()  # "source:id_type:value"


@dataclass
class ErasureReport:
    """What one request removed, and where."""

    request_id: str
    customers: int
    identifiers: int
    rows_deleted: dict[str, int]
    destinations: dict[str, dict[str, int]]


@dataclass
class BatchReport:
    requests: list[ErasureReport] = field(default_factory=list)
    # Requests that cannot be processed as given, left pending: request id -> why.
    rejected: dict[str, str] = field(default_factory=dict)
    rows_deleted: dict[str, int] = field(default_factory=dict)  # by `schema.table`, each row once
    packages_deleted: int = 0
    pending_records_scrubbed: int = 0
    analysts_copy_republished: bool = False
    # Earlier deletions a platform had not accepted, asked for again: {platform: counts}.
    platform_retries: dict[str, dict[str, int]] = field(default_factory=dict)

    def rows_by_schema(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for table, count in self.rows_deleted.items():
            schema = table.split(".")[0]
            out[schema] = out.get(schema, 0) + count
        return out


Parsed = tuple[list[str], list[tuple[str, str, str]]]  # a request's emails and identifiers


def _parsed(request: ErasureRequest) -> Parsed:
    """The request's emails and identifiers; ValueError when there is nothing usable to erase by."""
    identifiers = parse_identifiers(request.identifiers)
    if not (request.email or "").strip() and not identifiers:
        raise ValueError("the request names neither an email nor an identifier")
    return [request.email] if request.email else [], identifiers


def pending_requests(warehouse: Path) -> list[ErasureRequest]:
    """Requests loaded into `raw_privacy.erasure_requests` and not yet processed."""
    with duckdb.connect(str(warehouse)) as con:
        done = tombstone.processed_request_ids(con)
        if not has_table(con, *REQUESTS_TABLE.split(".")):
            return []
        names = {
            c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE raw_privacy.erasure_requests)").fetchall()
        }
        ids = "identifiers" if "identifiers" in names else "NULL"
        rows = con.execute(
            f"SELECT request_id, email, requested_at, {ids} FROM {REQUESTS_TABLE} ORDER BY requested_at, request_id"
        ).fetchall()
    out = []
    for request_id, email, requested_at, identifiers in rows:
        if request_id in done:
            continue
        parsed = json.loads(identifiers) if isinstance(identifiers, str) else identifiers or []
        out.append(ErasureRequest(request_id, email, requested_at, tuple(parsed)))
    return out


@dataclass
class PlatformAnswers:
    """What the platforms answered for one person: counts by outcome per platform, and the
    (platform, address, error) of each deletion that did not go through."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    failed: list[tuple[str, str, str]] = field(default_factory=list)


def _erase_at_destinations(destinations: Sequence[Destination], emails: list[str]) -> PlatformAnswers:
    answers = PlatformAnswers()
    for destination in destinations:
        counts: dict[str, int] = {}
        if emails:
            counts, why = platform_retries.ask_to_erase(destination, emails)
            answers.failed += [(destination.name, email, reason) for email, reason in why.items()]
        answers.counts[destination.name] = counts
    return answers


def _tell_destinations(
    destinations: Sequence[Destination],
    people: Sequence[Person],
    progress: Callable[[str], None],
    stop: threading.Event,
) -> list[PlatformAnswers]:
    """Ask every destination to delete each person, until `stop` is set; their answers,
    person by person."""
    outcomes = []
    told = time.monotonic()
    for done, person in enumerate(people, 1):
        if stop.is_set():
            break
        outcomes.append(_erase_at_destinations(destinations, sorted(person.emails)))
        # The platforms' deletion endpoints are rate-limited (Klaviyo: 60 a minute), so a
        # backlog takes minutes here: say how far it got.
        if destinations and (time.monotonic() - told >= PROGRESS_SECONDS or done == len(people)):
            progress(f"email platforms: {done}/{len(people)} request(s) sent")
            told = time.monotonic()
    return outcomes


def _erase_in_warehouse(
    con: duckdb.DuckDBPyConnection,
    requests: Sequence[tuple[ErasureRequest, Parsed]],
    destinations: Sequence[Destination],
    progress: Callable[[str], None],
) -> tuple[list[Person], list[ErasureReport], dict[str, int]]:
    """Resolve every request, delete their rows in one pass per table while every destination
    is asked to delete them, tombstone them and log each request."""
    started = time.monotonic()
    people = resolve_all(con, [parsed for _, parsed in requests])
    # The platforms' answers are waits on their rate limits, the deletes are DuckDB's work:
    # one runs beside the other. A delete that fails rolls the batch back and leaves every
    # request pending; the platforms' deletes, sent again next time, are idempotent.
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="erase-at-destinations") as pool:
        told = pool.submit(_tell_destinations, destinations, people, progress, stop)
        try:
            deleted = delete_rows(con, people)
            _delete_request_rows(con, [request.request_id for request, _ in requests], deleted)
        except BaseException:
            stop.set()  # the person being sent finishes; nobody else is asked until the retry
            raise
        progress(
            f"{len(requests)} request(s): {sum(len(p.customer_ids) for p in people)} customer(s), "
            f"{sum(deleted.per_table.values()):,} rows deleted from {len(deleted.per_table)} table(s) "
            f"in {time.monotonic() - started:.1f} s"
        )
        outcomes_per_person = told.result()
    reports = []
    for (request, _), person, rows, answers in zip(
        requests, people, deleted.per_person, outcomes_per_person, strict=True
    ):
        email_hash = identifier_hash(request.email) if request.email else None
        tombstone.record(con, request.request_id, email_hash, request.requested_at, person, rows, answers.counts)
        # A platform that did not delete the person is asked again by every later run.
        platform_retries.remember(con, [(d, email, request.request_id, why) for d, email, why in answers.failed])
        counts = (len(person.customer_ids), len(person.identifiers))
        reports.append(ErasureReport(request.request_id, *counts, rows, answers.counts))
    return people, reports, deleted.per_table


def _delete_request_rows(con: duckdb.DuckDBPyConnection, request_ids: Sequence[str], deleted: Deleted) -> None:
    """Delete the batch's own rows from the requests table, counted for their request.

    A request's row is personal data once processed: it names the person. `delete_rows` finds
    it by its email; a request that names identifiers only (Shopify's `customers/redact`:
    `shopify:customer_id:<id>`) is found here, by its id. The erasure log keeps the id."""
    if not request_ids or not has_table(con, *REQUESTS_TABLE.split(".")):
        return
    gone = con.execute(
        f"DELETE FROM {REQUESTS_TABLE} WHERE request_id IN (SELECT unnest(?)) RETURNING request_id",
        [list(request_ids)],
    ).fetchall()
    position = {request_id: k for k, request_id in enumerate(request_ids)}
    for (request_id,) in gone:
        rows = deleted.per_person[position[request_id]]
        rows[REQUESTS_TABLE] = rows.get(REQUESTS_TABLE, 0) + 1
    if gone:
        deleted.per_table[REQUESTS_TABLE] = deleted.per_table.get(REQUESTS_TABLE, 0) + len(gone)


def _processed_request_rows(warehouse: Path) -> int:
    """Rows of the requests table whose request the erasure log already holds: none are left
    by this version (each batch deletes its own, and loads skip processed requests,
    `ingestion.common.erasure.drop_erased`), but an earlier one kept those naming identifiers only."""
    if not Path(warehouse).exists():
        return 0
    with duckdb.connect(str(warehouse)) as con:
        if not has_table(con, *REQUESTS_TABLE.split(".")) or not has_table(con, *tombstone.LOG.split(".")):
            return 0
        return con.execute(
            f"SELECT count(*) FROM {REQUESTS_TABLE} WHERE request_id IN (SELECT request_id FROM {tombstone.LOG})"
        ).fetchall()[0][0]


def _delete_processed_request_rows(
    con: duckdb.DuckDBPyConnection, batch: BatchReport, progress: Callable[[str], None]
) -> None:
    removed = con.execute(
        f"DELETE FROM {REQUESTS_TABLE} WHERE request_id IN (SELECT request_id FROM {tombstone.LOG})"
    ).fetchall()[0][0]
    if removed:  # the batch may have deleted them already (a request given again by id)
        batch.rows_deleted[REQUESTS_TABLE] = batch.rows_deleted.get(REQUESTS_TABLE, 0) + removed
        progress(f"{removed} row(s) of requests processed on earlier runs deleted from {REQUESTS_TABLE}")


def _republish(warehouse: Path, copy: Path) -> None:
    # Imported here: the serving module loads Dagster and the dbt manifest, which plain
    # Python callers (the CLI) only need when there is a copy to replace.
    from orchestration.defs.serving.analysts_copy import _descriptions, publish
    from orchestration.paths import DBT_PROJECT_DIR

    publish(warehouse, copy, _descriptions(DBT_PROJECT_DIR / "target" / "manifest.json"))


def erase_requests(
    warehouse: Path,
    requests: Sequence[ErasureRequest],
    destinations: Sequence[Destination] = (),
    pipelines_dir: Path | None = None,
    analysts_copy: Path | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> BatchReport:
    """Process `requests` everywhere; see the module's docstring for the order of things.
    `progress` is told what was done, step by step."""
    batch = BatchReport()
    # Earlier deletions a platform did not accept go first: the person is already gone here.
    batch.platform_retries = platform_retries.retry(str(warehouse), destinations, progress)
    # A request that cannot be read waits for a fixed copy; it must not hold up the others.
    usable = []
    for request in requests:
        try:
            usable.append((request, _parsed(request)))
        except ValueError as exc:
            batch.rejected[request.request_id] = str(exc)
    stale = _processed_request_rows(warehouse)
    if not usable and not stale and not any(r["deleted"] for r in batch.platform_retries.values()):
        return batch
    people: list[Person] = []
    if usable or stale:
        with duckdb.connect(str(warehouse)) as con:
            tombstone.ensure(con)
            # One transaction: a crash anywhere leaves every request pending, with its rows still
            # there to resolve it from, and the next run does it whole (destinations' deletes are
            # idempotent). Committed piecemeal, a half-deleted person would resolve to less.
            con.execute("BEGIN TRANSACTION")
            try:
                if usable:
                    people, batch.requests, batch.rows_deleted = _erase_in_warehouse(
                        con, usable, destinations, progress
                    )
                if stale:
                    _delete_processed_request_rows(con, batch, progress)
            except BaseException:
                with contextlib.suppress(duckdb.Error):  # a dead connection must not hide why
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            con.execute("CHECKPOINT")
    # Deleted rows (and addresses a platform has now deleted) stay readable in the file's free
    # blocks until reused: rewrite it.
    started = time.monotonic()
    freed = files.compact_warehouse(Path(warehouse))
    progress(
        f"warehouse file rewritten without the deleted rows ({freed / 2**20:,.0f} MiB smaller) "
        f"in {time.monotonic() - started:.1f} s"
    )
    if pipelines_dir is not None and Path(pipelines_dir).exists() and (people or stale):
        # Completed packages of the privacy load hold the requests' rows too.
        batch.packages_deleted = files.delete_completed_packages(Path(pipelines_dir))
        if people:
            batch.pending_records_scrubbed = files.scrub_pending_packages(Path(pipelines_dir), Person.union(people))
    if analysts_copy is not None and analysts_copy.exists() and people:
        _republish(warehouse, analysts_copy)
        files.remove_stale_copies(analysts_copy)
        batch.analysts_copy_republished = True
    return batch
