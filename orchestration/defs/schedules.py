"""The nightly run: every asset, from the vendor APIs to the marts and the pushes.

When it runs is a setting: `TESSERA_NIGHTLY_CRON` (default `0 3 * * *`) in the timezone
`TESSERA_NIGHTLY_TIMEZONE` (default `UTC`, any IANA name such as `Europe/Berlin`). Dagster needs
the cron string when it loads the code location, so these two are read then (a reload of the
definitions picks up a change); a wrong value stops the load with a message saying what to fix.

Missed nights. The schedule is not partitioned, on purpose: the loaders read from their cursors
and the incremental models from their watermarks, so one run takes every day since the last
good one. When the daemon comes back after being down, Dagster launches one run, for the most
recent missed tick (not one per missed tick, which would push stale audiences). Each scheduled
run carries its "now" in the `tessera/now` tag, read by every time rule and quality gate: the
tick, or, for a run launched more than `LATE_AFTER` after its tick, the moment it was launched.
Its loads read the vendors up to the moment they run, so a "now" hours behind them would find
records "in the future" (the raw gates stop the night) and ignore orders placed since the tick
(an abandoned-cart email to someone who has bought).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from activation.sync.run import logical_now

CRON_SETTING = "TESSERA_NIGHTLY_CRON"
TIMEZONE_SETTING = "TESSERA_NIGHTLY_TIMEZONE"
DEFAULT_NIGHTLY_CRON = "0 3 * * *"
DEFAULT_NIGHTLY_TIMEZONE = "UTC"
# The run's logical time for every time rule (an ISO timestamp): the schedule sets it to the tick;
# set by hand on a launch, it replays the time rules as of that moment.
NOW_TAG = "tessera/now"
# A run launched later than this after its tick (the daemon was down) reads its launch time as now;
# the raw gates allow records up to an hour after now.
LATE_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class NightlySettings:
    """When the nightly run starts: a cron string evaluated in an IANA timezone."""

    cron: str = DEFAULT_NIGHTLY_CRON
    timezone: str = DEFAULT_NIGHTLY_TIMEZONE


def nightly_settings(env: Mapping[str, str] | None = None) -> NightlySettings:
    """The schedule settings from `env` (the process environment by default), validated.

    Raises ValueError naming the setting when the cron string or the timezone is not valid."""
    env = os.environ if env is None else env
    cron = (env.get(CRON_SETTING) or DEFAULT_NIGHTLY_CRON).strip()
    timezone = (env.get(TIMEZONE_SETTING) or DEFAULT_NIGHTLY_TIMEZONE).strip()
    if not is_valid_cron_string(cron):
        raise ValueError(
            f"{CRON_SETTING}={cron!r} is not a cron schedule; use five fields, e.g. '0 3 * * *' for 03:00 daily"
        )
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{TIMEZONE_SETTING}={timezone!r} is not a known timezone; use an IANA name like 'Europe/Berlin' or 'UTC'"
        ) from None
    return NightlySettings(cron=cron, timezone=timezone)


nightly_job = dg.define_asset_job(
    name="nightly",
    selection=dg.AssetSelection.all(),
    description="Load every source, then build and test the dbt models, push the audiences and write the run report.",
    # One machine, one warehouse writer at a time: separate step processes would only add
    # start-up cost (each re-imports dagster, dlt and the dbt manifest).
    executor_def=dg.in_process_executor,
)


def run_logical_now(run_tags: Mapping[str, str]) -> str | None:
    """The run's "now" for every time rule (abandoned after 24 h, windows, recency), as given.

    An explicit `TESSERA_NOW` (an ISO timestamp: a backfill, or the sandbox's world clock) wins;
    otherwise the run's `tessera/now` tag (set by the schedule, or by hand on a launch); otherwise
    none, and dbt uses the moment it started."""
    return os.environ.get("TESSERA_NOW") or run_tags.get(NOW_TAG)


def run_now(run: dg.DagsterRun | None) -> datetime:
    """The run's "now" as a time, for the steps that judge or send in Python (quality gates,
    pushes): its logical now, else the wall clock."""
    return logical_now(run_logical_now(run.tags) if run else None)


def tick_tags(scheduled_execution_time: datetime, launched_at: datetime | None = None) -> dict[str, str]:
    """The tags of the run for one tick: its "now" in UTC, the tick itself, or the launch time
    when the run is launched more than `LATE_AFTER` after its tick."""
    tick = scheduled_execution_time.astimezone(UTC)
    launched_at = (launched_at or datetime.now(UTC)).astimezone(UTC)
    now = launched_at if launched_at - tick > LATE_AFTER else tick
    return {NOW_TAG: now.isoformat()}


def build_nightly_schedule(settings: NightlySettings) -> dg.ScheduleDefinition:
    """The schedule that starts the nightly job at the configured time."""

    @dg.schedule(
        name="nightly_schedule",
        job=nightly_job,
        cron_schedule=settings.cron,
        execution_timezone=settings.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"The nightly run at `{settings.cron}` ({settings.timezone}); set {CRON_SETTING} and "
        f"{TIMEZONE_SETTING} to change it. After the daemon was down, one run catches up every missed night.",
    )
    def _nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return dg.RunRequest(tags=tick_tags(context.scheduled_execution_time))

    return _nightly


nightly_schedule = build_nightly_schedule(nightly_settings())
