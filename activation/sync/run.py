"""One push of every audience to every destination it names: what the nightly run and the CLI call.

Per destination: first carry unsubscribes across platforms (`sync_suppressions`), then each
audience. A destination that cannot be reached or an audience whose guard trips is reported
and the others go on; the run fails at the end if any did, so nothing is silently skipped.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from activation.audiences import AudienceConfig
from activation.destinations.base import Destination
from activation.sync.engine import GuardTripped, SyncReport, sync_audience, sync_suppressions

log = logging.getLogger("tessera.activation")


def logical_now(value: str | None = None) -> datetime:
    """The run's "now": `value` or else `TESSERA_NOW` (an ISO timestamp: the schedule tick, a
    backfill's date, the sandbox's clock), else the wall clock. Ledger times and holdout windows
    use it."""
    value = value or os.environ.get("TESSERA_NOW")
    if not value:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class PushResult:
    reports: list[SyncReport] = field(default_factory=list)
    suppressions: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # what stopped, in words

    @property
    def ok(self) -> bool:
        return not self.failures


def push(
    conn: duckdb.DuckDBPyConnection,
    audiences: Iterable[AudienceConfig],
    destinations: dict[str, Destination],
    *,
    run_id: str | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    confirm: bool = False,
) -> PushResult:
    run_id = run_id or uuid.uuid4().hex
    now = now or logical_now()
    result = PushResult()
    audiences = list(audiences)
    for name, destination in destinations.items():
        try:
            result.suppressions[name] = sync_suppressions(conn, destination, run_id=run_id, now=now, dry_run=dry_run)
        except Exception as exc:  # one destination down must not stop the other
            result.failures.append(f"{name}/suppressions: {exc}")
            log.error("%s: carrying unsubscribes failed: %s", name, exc)
            continue
        for config in audiences:
            if name not in config.destinations:
                continue
            try:
                result.reports.append(
                    sync_audience(conn, config, destination, run_id=run_id, now=now, dry_run=dry_run, confirm=confirm)
                )
            except GuardTripped as exc:
                result.reports.append(exc.report)
                result.failures.append(str(exc))
                log.error("%s", exc)
            except Exception as exc:
                result.failures.append(f"{name}/{config.name}: {exc}")
                log.error("%s/%s: push failed: %s", name, config.name, exc)
    return result
