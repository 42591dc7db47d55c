"""Failure alerts: what a failed run is summarized as, with no secret in it, and the webhook it goes to.

Plain Python, so the summary can be built and posted without a sensor. The webhook body is
Slack-compatible (a `text` field an incoming webhook shows as the message) and carries the same
facts as fields for any other receiver: job, run id, failed steps with their errors, a link.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import requests

from ingestion.common.redaction import redact

WEBHOOK_SETTING = "TESSERA_ALERT_WEBHOOK_URL"
DAGSTER_URL_SETTING = "TESSERA_DAGSTER_URL"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
# A dbt failure can carry pages of log; a chat message needs the first lines.
MAX_ERROR_CHARS = 600


@dataclass(frozen=True)
class FailedStep:
    step: str
    error: str


@dataclass(frozen=True)
class FailureSummary:
    """What went wrong in one run, safe to post anywhere."""

    job: str
    run_id: str
    error: str
    link: str
    failed_steps: list[FailedStep] = field(default_factory=list)

    @property
    def text(self) -> str:
        """One chat message: what failed, the first errors, and where to look."""
        lines = [f"Tessera run failed: job `{self.job}`, run `{self.run_id}`"]
        for step in self.failed_steps[:5]:
            lines.append(f"- `{step.step}`: {_one_line(step.error)}")
        if len(self.failed_steps) > 5:
            lines.append(f"- and {len(self.failed_steps) - 5} more step(s)")
        if not self.failed_steps:
            lines.append(f"- {_one_line(self.error)}")
        lines.append(f"<{self.link}|Open the run in Dagster>")
        return "\n".join(lines)

    def as_payload(self) -> dict:
        """The webhook's JSON body."""
        return {"text": self.text, **asdict(self)}


#: How much of one error a chat line shows (the whole error is in `failed_steps`).
TEXT_ERROR_CHARACTERS = 500


def _one_line(error: str) -> str:
    """An error as one chat line: its lines joined (the cause of a load failure is often on a
    later line, and one step can fail for several vendors), cut at TEXT_ERROR_CHARACTERS."""
    text = " ".join(error.split()) or "no error message"
    return text if len(text) <= TEXT_ERROR_CHARACTERS else text[: TEXT_ERROR_CHARACTERS - 1] + "…"


def run_link(run_id: str, env: Mapping[str, str] | None = None) -> str:
    """The run's page in the Dagster UI (`TESSERA_DAGSTER_URL`, else the local `dagster dev`)."""
    env = os.environ if env is None else env
    base = (env.get(DAGSTER_URL_SETTING) or DEFAULT_DAGSTER_URL).rstrip("/")
    return f"{base}/runs/{run_id}"


def summarize(
    job: str,
    run_id: str,
    run_error: str,
    failed_steps: Mapping[str, str],
    env: Mapping[str, str] | None = None,
) -> FailureSummary:
    """A `FailureSummary` with every error redacted and cut to a readable length."""

    def clean(text: str) -> str:
        text = redact(text.strip(), env)
        return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"

    steps = [FailedStep(step=key, error=clean(error)) for key, error in failed_steps.items()]
    return FailureSummary(
        job=job,
        run_id=run_id,
        error=clean(run_error),
        link=run_link(run_id, env),
        failed_steps=steps,
    )


class WebhookError(RuntimeError):
    """The alert webhook did not accept the alert after every attempt."""


def post_alert(url: str, summary: FailureSummary, attempts: int = 3, timeout: float = 10) -> int:
    """POST the summary to `url`; returns the HTTP status. Retries connection errors, 429 and
    5xx with a short backoff; raises WebhookError (never naming the URL, which often holds a
    token) when it still fails."""
    last = "no attempt made"
    for attempt in range(attempts):
        if attempt:
            time.sleep(2 ** (attempt - 1))
        try:
            response = requests.post(url, json=summary.as_payload(), timeout=timeout)
        except requests.RequestException as exc:
            last = type(exc).__name__
            continue
        if response.status_code < 400:
            return response.status_code
        last = f"HTTP {response.status_code}"
        if response.status_code != 429 and response.status_code < 500:
            break
    raise WebhookError(f"the alert webhook ({WEBHOOK_SETTING}) refused the alert: {last}")
