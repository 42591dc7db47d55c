"""Mixpanel source: every tracked event from the Raw Event Export, merged on `$insert_id`.

Hand-written rather than `rest_api`: the export is one streamed JSONL body per date range, not
pages of JSON. The body is cut into blocks of complete lines and each block is parsed in bulk
into an Arrow table (see `parse.py`), which dlt loads as it is.

Incremental by day with the API's own filter (`from_date`/`to_date`, whole UTC days, or the
project's own days for a project created before 2023, whose `time` is then in its time zone
too: `PROJECT_TIMEZONE`): a run exports from the day of (newest loaded event - LOOKBACK_DAYS)
to the project's today, because events reach the export up to five days late (offline phones).
Days whose export carried corrupt lines are exported again on the next runs, so what the
quarantine caught in transit arrives once the vendor serves it clean.

"Today" is the run's logical date when `SOURCES__MIXPANEL__END_DATE` is set (the orchestrator's
schedule tick, or the sandbox's clock). Otherwise it is the wall clock's UTC date, checked with
the export itself: Mixpanel refuses a `to_date` that has not begun for the project, so when it
refuses, the latest accepted day is found by a short binary search (a few queries of the 60 an
hour allowed). Asking for a later day is never an option: the export answers it with a 400.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dlt
import pyarrow.compute as pc
from dlt.common.exceptions import PipelineStateNotAvailable
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.sources import DltResource

from ingestion.common.errors import VendorError, setting
from ingestion.common.http import RetryPolicy
from ingestion.common.quarantine import quarantine_row
from ingestion.mixpanel.helpers import VENDOR, ExportClient, plan_ranges
from ingestion.mixpanel.parse import INVALID_JSON, NOT_UTF8, BlockParser, ParsedBlock, SeenIds, day_of_fragment
from ingestion.mixpanel.settings import BLOCK_BYTES, DAYS_PER_QUERY, LOOKBACK_DAYS, REPAIR_ATTEMPTS, START_DATE
from ingestion.pipelines import warehouse_of

RESOURCE = "events"
LOOKBACK_SECONDS = LOOKBACK_DAYS * 86400
# Rejected because of what happened in transit (the vendor holds the event intact).
_TRANSIT_REASONS = (INVALID_JSON, NOT_UTF8)

log = logging.getLogger("tessera.ingestion")


@dlt.source(name="mixpanel")
def mixpanel_source(
    base_url: str = dlt.config.value,
    project_id: str = dlt.config.value,
    username: str = dlt.secrets.value,
    secret: str = dlt.secrets.value,
    start_date: str | None = None,
    end_date: str | None = None,
    gzip: bool = True,
    retry_policy: RetryPolicy | None = None,
    project_timezone: str | None = None,
) -> DltResource:
    """Events from Mixpanel's Raw Event Export at `base_url` (https://data.mixpanel.com for the
    real service; data-eu / data-in for EU and India residency).

    Settings: `SOURCES__MIXPANEL__BASE_URL`, `..._PROJECT_ID`, and a service account in
    `..._USERNAME` / `..._SECRET`. Optional: `..._START_DATE` (first day of the first run,
    yyyy-mm-dd), `..._END_DATE` (the run's logical date, the last day exported),
    `..._PROJECT_TIMEZONE` for a project created before 1 January 2023: Mixpanel exports such a
    project's days and `time` in the project's time zone (an IANA name, e.g. `US/Pacific`, as
    the project's settings show it), not UTC.
    """
    project_timezone = _checked_timezone(project_timezone)
    client = ExportClient(base_url, project_id, username, secret, policy=retry_policy, gzip=gzip)
    last_day = date.fromisoformat(end_date) if end_date else None
    cursor = {}
    if start_date:
        cursor["event_time"] = dlt.sources.incremental(
            "time",
            initial_value=datetime.fromisoformat(start_date).replace(tzinfo=UTC),
            lag=LOOKBACK_SECONDS,
            on_cursor_value_missing="include",
        )
    resource = events(client, last_day, project_timezone=project_timezone, **cursor)
    if _first_load():
        # Nothing loaded yet, and a run never passes an insert id twice (`SeenIds`): appending
        # gives the same table as the merge and skips its anti-join, about a quarter of the load.
        resource.apply_hints(write_disposition="append")
    return resource


def _checked_timezone(name: str | None) -> str | None:
    """The project's time zone as given, or None for UTC; a name no time zone has stops the load."""
    if not name or not name.strip() or name.strip().upper() == "UTC":
        return None
    try:
        ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise VendorError(
            VENDOR,
            f"{setting(VENDOR, 'project_timezone')}={name!r} is not a time zone; use an IANA name like US/Pacific",
        ) from None
    return name.strip()


def _first_load() -> bool:
    """True when no run has recorded an event cursor yet and the warehouse holds no event.
    Decided when the source is created, from the pipeline's state as it stands then: a run must
    restore it from the warehouse first (`ingestion.pipelines.restore_state`), or a pipelines
    folder emptied by a failed run would look new over a loaded table and the lookback days
    would be appended twice. The table is asked too: dlt writes the events and the state row as
    separate jobs of one package, so a load cut off between them leaves events with no cursor
    behind them, and appending again would load each of them twice."""
    try:
        resource_state = dlt.current.source_state().get("resources", {}).get(RESOURCE, {})
    except PipelineStateNotAvailable:  # made before its pipeline: the merge is right either way
        return False
    if resource_state.get("incremental", {}).get("time", {}).get("last_value"):
        return False
    return not _events_in_warehouse()


def _events_in_warehouse() -> bool:
    """Whether the active pipeline's dataset already holds an event row. A warehouse file that
    does not exist is not created by asking: loading the code location builds sources with a
    pipeline whose warehouse must never be opened."""
    pipeline = dlt.current.pipeline()
    if not warehouse_of(pipeline).exists():
        return False
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(RESOURCE)
            return bool(client.execute_sql(f"SELECT 1 FROM {table} LIMIT 1"))
    except DatabaseUndefinedRelation:
        return False


@dlt.resource(
    name=RESOURCE,
    # Events never change once Mixpanel has them: a re-exported event (the lookback) is left as
    # loaded, only insert ids new to the table are inserted. Repeats within a run never reach the
    # load (`SeenIds`), so the merge needs no de-duplication pass.
    write_disposition={"disposition": "merge", "strategy": "insert-only"},
    primary_key="insert_id",
)
def events(
    client: ExportClient,
    end_date: date | None = None,
    project_timezone: str | None = None,
    event_time: dlt.sources.incremental[datetime] = dlt.sources.incremental(
        "time", initial_value=START_DATE, lag=LOOKBACK_SECONDS, on_cursor_value_missing="include"
    ),
):
    """Every event, one row per `insert_id`: the columns the marts read, flattened and typed,
    plus `products` and, as JSON text, the properties no typed column carries."""
    state = dlt.current.resource_state()
    repairs = {date.fromisoformat(day): left for day, left in state.get("repair_days", {}).items()}
    previous = event_time.get_state()["last_value"]
    # The date range is applied by the API (from_date/to_date); dlt passes rows through and the
    # cursor is set once, below, from the newest event of the run.
    event_time.advance(None)

    # Days as the export reads them: UTC, or the project's own for a project on its time zone.
    zone = ZoneInfo(project_timezone) if project_timezone else UTC
    start = _utc(event_time.start_value).astimezone(zone).date()
    end = end_date or client.latest_day(datetime.now(zone).date(), earliest=start)
    start = min(start, end)
    run = _Run()
    parser = BlockParser(project_timezone=project_timezone)
    try:
        # One block is parsed (DuckDB, off the GIL) while the previous one is written by dlt.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mixpanel-parse") as pool:
            for lo, hi in plan_ranges(start, end, repairs, DAYS_PER_QUERY):
                pending: Future[ParsedBlock] | None = None
                for block in client.export(lo, hi, BLOCK_BYTES):
                    parsing = pool.submit(parser.parse, block)
                    if pending is not None:
                        yield from run.items(pending.result(), lo, hi)
                    pending = parsing
                if pending is not None:
                    yield from run.items(pending.result(), lo, hi)
    finally:
        parser.close()

    if run.newest is not None and (previous is None or run.newest > _utc(previous)):
        event_time.advance(run.newest)
    state["repair_days"] = _next_repairs(repairs, run.corrupt_days)


class _Run:
    """What one run has passed on: insert ids, the newest event, days with corrupt lines."""

    def __init__(self) -> None:
        self.seen = SeenIds()
        self.newest: datetime | None = None
        self.corrupt_days: set[date] = set()

    def items(self, parsed: ParsedBlock, lo: date, hi: date) -> Iterator[Any]:
        if parsed.events is not None:
            events = self.seen.first_seen(parsed.events)
            if events.num_rows:
                newest = pc.max(events.column("time")).as_py()
                self.newest = newest if self.newest is None else max(self.newest, newest)
                yield events
        for record, reason in parsed.rejected:
            # One row at a time: a row marked for the quarantine table cannot travel in a list.
            yield quarantine_row(RESOURCE, record, reason)
            if reason in _TRANSIT_REASONS:
                day = day_of_fragment(record if isinstance(record, str) else "")
                self.corrupt_days.update([day] if day and lo <= day <= hi else _days(lo, hi))


def _next_repairs(repairs: dict[date, int], corrupt_days: set[date]) -> dict[str, int]:
    """Days to export again next time, with the attempts they have left."""
    out: dict[str, int] = {}
    for day in sorted(corrupt_days):
        left = repairs[day] - 1 if day in repairs else REPAIR_ATTEMPTS
        if left > 0:
            out[day.isoformat()] = left
        else:
            log.warning("mixpanel: %s still exports corrupt lines; they stay in quarantine", day)
    return out


def _days(lo: date, hi: date) -> list[date]:
    return [date.fromordinal(n) for n in range(lo.toordinal(), hi.toordinal() + 1)]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
