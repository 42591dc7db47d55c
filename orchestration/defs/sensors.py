"""The run-failure sensor: every failed run is reported where a user sees it.

In the sensor's log (the Dagster UI, Automation > run_failure_alert, and the daemon's output):
which steps failed and why. And, when `TESSERA_ALERT_WEBHOOK_URL` is set, as a JSON POST to that
webhook (a Slack incoming webhook works as is): job, run id, failed steps with their errors,
the run's error and a link to the run (`TESSERA_DAGSTER_URL`, default http://127.0.0.1:3000).
Both are redacted: no credential from the environment or an error message leaves Tessera.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

from orchestration.alerts import WEBHOOK_SETTING, WebhookError, post_alert, summarize


def _error_text(error: SerializableErrorInfo | None) -> str:
    """The user's error rather than Dagster's wrapper ("Error occurred while executing op ...")."""
    if error is None:
        return ""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def step_errors(context: dg.RunFailureSensorContext) -> dict[str, str]:
    """Failed step -> why it failed: a `dg.Failure`'s description, else the innermost exception."""
    errors: dict[str, str] = {}
    for event in context.get_step_failure_events():
        data = event.event_specific_data
        description = data.user_failure_data.description if data and data.user_failure_data else None
        errors[event.step_key or "?"] = description or _error_text(data.error if data else None)
    return errors


@dg.run_failure_sensor(
    name="run_failure_alert",
    description=(
        f"Logs the failed steps of every failed run and why; posts a summary to {WEBHOOK_SETTING} when it is set."
    ),
    default_status=dg.DefaultSensorStatus.RUNNING,
    # Runs started from a shell (`dagster job execute`, `dagster asset materialize`) or in
    # process (the demo) have no code location of origin, and a sensor watching only its own
    # location never sees them fail.
    monitor_all_code_locations=True,
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    summary = summarize(
        job=run.job_name,
        run_id=run.run_id,
        run_error=context.failure_event.message or "",
        failed_steps=step_errors(context),
    )
    context.log.error(
        f"run {run.run_id} of job {run.job_name} failed"
        + "".join(f"\n  step {s.step}: {s.error}" for s in summary.failed_steps)
        + (f"\n  {summary.error}" if not summary.failed_steps else "")
        + f"\n  {summary.link}"
    )
    url = os.environ.get(WEBHOOK_SETTING)
    if not url:
        return
    try:
        status = post_alert(url, summary)
    except WebhookError as exc:
        # Logged, not raised: a raising sensor would hold back the alerts of every later failed run.
        context.log.error(str(exc))
        return
    context.log.info(f"alert for run {run.run_id} posted to the webhook (HTTP {status})")
