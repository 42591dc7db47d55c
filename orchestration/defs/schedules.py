"""The nightly run: every asset, from the vendor APIs to the marts and the pushes.

When it runs is a setting: `TESSERA_NIGHTLY_CRON` (default `0 3 * * *`) in the timezone
`TESSERA_NIGHTLY_TIMEZONE` (default `UTC`, any IANA name such as `Europe/Berlin`). Dagster needs
the cron string when it loads the code location, so these two are read then (a reload of the
definitions picks up a change); a wrong value stops the load with a message saying what to fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

CRON_SETTING = "TESSERA_NIGHTLY_CRON"
TIMEZONE_SETTING = "TESSERA_NIGHTLY_TIMEZONE"
DEFAULT_NIGHTLY_CRON = "0 3 * * *"
DEFAULT_NIGHTLY_TIMEZONE = "UTC"


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


def build_nightly_schedule(settings: NightlySettings) -> dg.ScheduleDefinition:
    """The schedule that starts the nightly job at the configured time."""
    return dg.ScheduleDefinition(
        name="nightly_schedule",
        job=nightly_job,
        cron_schedule=settings.cron,
        execution_timezone=settings.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"The nightly run at `{settings.cron}` ({settings.timezone}); set {CRON_SETTING} and "
        f"{TIMEZONE_SETTING} to change it.",
    )


nightly_schedule = build_nightly_schedule(nightly_settings())
