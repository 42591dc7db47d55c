"""Erasure requests do not wait for the loads to work again.

In the nightly run the erasure step comes after the loads (so it erases what they brought in),
and Dagster skips it when a load or a raw-data check fails. A vendor whose key expired would
then hold every erasure request for as many nights as it takes someone to renew the key. So
when a nightly run fails without having processed the erasures, this sensor starts the
`erasure` job: the erasure step alone. It needs nothing from that night's loads: records they
did not load yet are dropped by the tombstone when they are.
"""

from __future__ import annotations

import dagster as dg

from orchestration.defs.schedules import NOW_TAG, nightly_job

ERASURE_KEY = dg.AssetKey(["privacy", "erased_identifiers"])

erasure_job = dg.define_asset_job(
    name="erasure",
    selection=dg.AssetSelection.assets(ERASURE_KEY),
    description=(
        "The erasure step alone: loads the shop's new erasure requests and erases each person "
        "everywhere. Started after a nightly run that failed before its erasure step."
    ),
    executor_def=dg.in_process_executor,
)


def erasures_ran(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether the run materialized the erasure step (a later run's materialization means the
    requests were processed since, which is as good)."""
    latest = instance.get_latest_materialization_event(ERASURE_KEY)
    if latest is None:
        return False
    if latest.run_id == run_id:
        return True
    record = instance.get_run_record_by_id(run_id)
    return bool(record and record.start_time and latest.timestamp >= record.start_time)


@dg.run_failure_sensor(
    name="erasure_after_failed_night",
    description=(
        "When a nightly run fails before its erasure step (a load or a raw-data check failed), "
        "starts the erasure job so the night's erasure requests are processed anyway."
    ),
    # A nightly run started from a shell (`dagster job execute -j nightly`, the way to catch up
    # by hand) has no code location of origin: only a sensor watching every location sees it.
    monitor_all_code_locations=True,
    request_job=erasure_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def erasure_after_failed_night(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    if run.job_name != nightly_job.name:
        return dg.SkipReason(f"run {run.run_id} is of job {run.job_name}, not {nightly_job.name}")
    if erasures_ran(context.instance, run.run_id):
        return dg.SkipReason(f"run {run.run_id} processed its erasure requests before it failed")
    context.log.info(f"run {run.run_id} failed before its erasure step: starting the erasure job")
    # The same "now" as the failed night, so the erasure run reads the world at the same moment.
    tags = {NOW_TAG: run.tags[NOW_TAG]} if NOW_TAG in run.tags else {}
    return dg.RunRequest(run_key=f"erasure-after-{run.run_id}", tags=tags)
