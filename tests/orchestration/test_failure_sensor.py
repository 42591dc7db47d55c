"""The run-failure sensor on a real failed run: it logs the failed steps and posts a redacted
summary to a webhook, here a real HTTP server on loopback."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from orchestration.alerts import DAGSTER_URL_SETTING, WEBHOOK_SETTING, FailedStep, FailureSummary
from orchestration.definitions import defs
from orchestration.defs.sensors import run_failure_alert

SECRET_KEY = "sk-very-secret-0123456789"


class Webhook:
    """A loopback HTTP server that keeps what was posted to it and answers with `status`."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append({"content_type": self.headers["Content-Type"], "body": json.loads(body)})
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/xyz"


@pytest.fixture()
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


@dg.op
def load_orders() -> int:
    return 3


@dg.op
def push_audience(orders: int) -> None:
    raise ConnectionError(
        f"the vendor answered 401 to https://a.example.com/api/lists?api_key={SECRET_KEY} "
        f"with Authorization: Bearer {SECRET_KEY}"
    )


@dg.op
def check_guard() -> None:
    raise dg.Failure(description="the push would remove 80% of the audience; confirm to go on")


@dg.op
def build_marts() -> int:
    return 1


@dg.job
def tiny_night():
    push_audience(load_orders())
    check_guard()
    build_marts()


def _failed_run_context(instance: dg.DagsterInstance) -> dg.RunFailureSensorContext:
    result = tiny_night.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()


def _logged_by(context: dg.RunFailureSensorContext) -> list[str]:
    """What the sensor writes to its log (the tick's log in the UI), collected as text."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    context.log.addHandler(Collect())
    return lines


def test_a_failed_run_is_logged_and_posted_without_secrets(webhook, monkeypatch):
    monkeypatch.setenv(WEBHOOK_SETTING, webhook.url)
    monkeypatch.setenv(DAGSTER_URL_SETTING, "https://dagster.shop.example/")
    monkeypatch.setenv("ACTIVATION__KLAVIYO__API_KEY", SECRET_KEY)
    with dg.DagsterInstance.ephemeral() as instance:
        context = _failed_run_context(instance)
        run_id = context.dagster_run.run_id
        log = _logged_by(context)
        run_failure_alert(context)

    assert len(webhook.received) == 1
    posted = webhook.received[0]
    assert posted["content_type"] == "application/json"
    body = posted["body"]
    assert body["job"] == "tiny_night"
    assert body["run_id"] == run_id
    assert body["link"] == f"https://dagster.shop.example/runs/{run_id}"
    steps = {s["step"]: s["error"] for s in body["failed_steps"]}
    assert set(steps) == {"push_audience", "check_guard"}
    assert steps["check_guard"] == "the push would remove 80% of the audience; confirm to go on"
    assert steps["push_audience"].startswith("ConnectionError: the vendor answered 401")
    assert "Steps failed" in body["error"]
    # Slack shows `text`: the job, each failed step, the link.
    assert "tiny_night" in body["text"] and "push_audience" in body["text"] and "check_guard" in body["text"]
    assert f"https://dagster.shop.example/runs/{run_id}" in body["text"]
    # No credential in what left, nor in the log; the webhook's own URL is not logged either.
    assert SECRET_KEY not in json.dumps(body)
    logged = "\n".join(log)
    assert "push_audience" in logged and "check_guard" in logged and "the vendor answered 401" in logged
    assert SECRET_KEY not in logged
    assert webhook.url not in logged and "posted to the webhook (HTTP 200)" in logged


def test_without_a_webhook_the_failure_is_only_logged(webhook, monkeypatch):
    monkeypatch.delenv(WEBHOOK_SETTING, raising=False)
    monkeypatch.delenv(DAGSTER_URL_SETTING, raising=False)
    with dg.DagsterInstance.ephemeral() as instance:
        context = _failed_run_context(instance)
        log = _logged_by(context)
        run_failure_alert(context)
        assert f"http://127.0.0.1:3000/runs/{context.dagster_run.run_id}" in "\n".join(log)
    assert webhook.received == []


def test_a_refusing_webhook_is_logged_and_does_not_break_the_sensor(webhook, monkeypatch):
    webhook.status = 403
    monkeypatch.setenv(WEBHOOK_SETTING, webhook.url)
    with dg.DagsterInstance.ephemeral() as instance:
        context = _failed_run_context(instance)
        log = _logged_by(context)
        run_failure_alert(context)
    assert len(webhook.received) == 1  # a 403 is not retried
    assert "refused the alert: HTTP 403" in "\n".join(log)
    assert webhook.url not in "\n".join(log)


def test_the_sensor_is_registered_and_watches_every_run():
    sensor = defs.resolve_sensor_def("run_failure_alert")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    # Runs started from a shell or in process have no code location: only a sensor watching
    # every location sees them (checked by hand against `dagster dev`: a failed
    # `dagster job execute` run was never alerted on without it). No public accessor exists.
    assert sensor._monitor_all_code_locations


def test_the_chat_text_carries_the_cause_on_a_later_line_and_every_vendor():
    error = (
        "mixpanel reading failed: Pipeline execution failed at step=extract with exception:\n\n"
        "<class 'ingestion.common.errors.VendorUnreachable'>\nmixpanel: could not reach the API. "
        "Check SOURCES__MIXPANEL__BASE_URL; hubspot setting up failed: missing SOURCES__HUBSPOT__ACCESS_TOKEN"
    )
    summary = FailureSummary("nightly", "r1", "Steps failed", "http://x/runs/r1", [FailedStep("vendor_loads", error)])
    (line,) = [line for line in summary.text.splitlines() if "vendor_loads" in line]
    assert "SOURCES__MIXPANEL__BASE_URL" in line and "SOURCES__HUBSPOT__ACCESS_TOKEN" in line
    long = FailureSummary("nightly", "r1", "x" * 5000, "http://x/runs/r1")
    assert max(len(line) for line in long.text.splitlines()) < 600
