"""The nightly run: every asset, from the vendor APIs to the marts."""

import dagster as dg

NIGHTLY_CRON = "0 3 * * *"
NIGHTLY_TIMEZONE = "UTC"

nightly_job = dg.define_asset_job(
    name="nightly",
    selection=dg.AssetSelection.all(),
    description="Load every source, then build and test the dbt models.",
    # One machine, one warehouse writer at a time: separate step processes would only add
    # start-up cost (each re-imports dagster, dlt and the dbt manifest).
    executor_def=dg.in_process_executor,
)

nightly_schedule = dg.ScheduleDefinition(
    name="nightly_schedule",
    job=nightly_job,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone=NIGHTLY_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
