"""Holding an incremental cursor back so records quarantined in transit are read again."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

import dlt

log = logging.getLogger("tessera.ingestion")


def hold_cursor(cursor: dlt.sources.incremental, points: Iterable[datetime], *, vendor: str, max_runs: int) -> None:
    """After a run that quarantined records, keep the stored cursor no later than the earliest
    of their `points` (each record's cursor value) so the next run reads them again.

    Each point is held for at most `max_runs` runs in a row; a record still malformed after
    that stays in quarantine, and no longer holds the cursor back. The count is per point, not
    per resource: a record quarantined tonight for the first time is read again tomorrow,
    however many nights in a row others were quarantined before it.

    Runs after the resource's last page went through dlt's incremental step, which never moves
    the cursor back itself. No points (nothing quarantined) clears the counts."""
    state = dlt.current.resource_state(cursor.resource_name)
    state.pop("repair_runs", None)  # the per-resource count of earlier versions
    before = state.pop("repair_points", {})
    runs = {point: before.get(point.isoformat(), 0) + 1 for point in set(points)}
    if not runs:
        return
    # Every point seen tonight is remembered, given up or not: one re-read because an earlier
    # point held the cursor must not start its count again.
    state["repair_points"] = {point.isoformat(): n for point, n in runs.items()}
    given_up = sorted(point for point, n in runs.items() if n == max_runs + 1)
    if given_up:
        log.warning(
            "%s: %s records modified at %s still malformed after %d runs; they stay in quarantine",
            vendor,
            cursor.resource_name,
            ", ".join(point.isoformat() for point in given_up),
            max_runs,
        )
    held = [point for point, n in runs.items() if n <= max_runs]
    if not held:
        return
    point = min(held)
    cursor_state = cursor.get_state()
    if cursor_state["last_value"] is None or point < cursor_state["last_value"]:
        cursor_state["last_value"] = point
