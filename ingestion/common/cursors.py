"""Holding an incremental cursor back so records quarantined in transit are read again."""

from __future__ import annotations

import logging
from datetime import datetime

import dlt

log = logging.getLogger("tessera.ingestion")


def hold_cursor(cursor: dlt.sources.incremental, point: datetime | None, *, vendor: str, max_runs: int) -> None:
    """After a run that quarantined records, keep the stored cursor no later than `point` so the
    next run reads them again; give up after `max_runs` runs in a row (they stay in quarantine).

    Runs after the resource's last page went through dlt's incremental step, which never moves
    the cursor back itself. `point=None` (nothing quarantined) clears the repair count."""
    state = dlt.current.resource_state(cursor.resource_name)
    if point is None:
        state.pop("repair_runs", None)
        return
    runs = state.get("repair_runs", 0) + 1
    if runs > max_runs:
        state.pop("repair_runs", None)
        log.warning(
            "%s: %s records still malformed after %d runs; they stay in quarantine",
            vendor,
            cursor.resource_name,
            max_runs,
        )
        return
    state["repair_runs"] = runs
    cursor_state = cursor.get_state()
    if cursor_state["last_value"] is None or point < cursor_state["last_value"]:
        cursor_state["last_value"] = point
