"""The Dagster UI in a real headless Chromium, as a data engineer uses it.

`dagster dev` (webserver and daemon, as `make dev` starts them) runs against a sandbox over a
private copy of the small test world. In the browser: the asset graph shows the layers and the
assets, the nightly job is launched with "Materialize all" and its run page reaches Success, and
the run report the run's metadata links to renders with its sections and charts.
Screenshots of every step go to data/screenshots/dagster_ui/ (ignored by git).
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from sandbox.env import sandbox_env
from tests.browser import SCREENSHOTS, UiSteps, chromium_executable, headless_chromium
from tests.dagster_dev import DagsterDev, running_dagster_dev

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The layers a data engineer expects to see in the global lineage.
GROUPS = ["ingestion", "staging", "intermediate", "marts", "activation", "serving"]
# In the activation group's lineage: a mart it reads, a push, and the report downstream.
ACTIVATION_NODES = ["dim_customers", "abandoned_checkouts", "run_report"]
REPORT_SECTIONS = ["funnel", "exit-causes", "identity", "audiences", "campaigns", "holdouts"]
# Holdout results are only measured once a conversion window has passed: not on a first night.
CHARTED_SECTIONS = ["funnel", "exit-causes", "identity", "audiences", "campaigns"]
RUN_TIMEOUT_S = 480
UI_TIMEOUT_MS = 90_000
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

RUN_QUERY = """query ($runId: ID!) { runOrError(runId: $runId) { ... on Run {
    runId status stepStats { stepKey status } } } }"""


def _graph_node(page, name: str):
    """An asset or group node drawn in the lineage graph (not the sidebar's tree)."""
    return page.locator("svg foreignObject").get_by_text(name, exact=True).first


def _wait_for_run(dev: DagsterDev, run_id: str) -> dict:
    """Poll the webserver's GraphQL API (the UI's own source) until the run ends."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        run = dev.graphql(RUN_QUERY, runId=run_id)["runOrError"]
        if run["status"] in TERMINAL:
            return run
        time.sleep(3)
    raise AssertionError(f"run {run_id} did not finish within {RUN_TIMEOUT_S}s (last status {run['status']})")


# The nightly run alone takes 2-4 minutes on two busy cores; pytest's default 600 s is too tight.
@pytest.mark.timeout(900)
def test_asset_graph_nightly_run_and_report_in_the_ui(private_sandbox, tmp_path):
    chromium = chromium_executable()  # before anything starts: no browser, a quick and clear failure
    data = tmp_path / "data"
    env = sandbox_env(private_sandbox.url, private_sandbox.world)
    started = time.perf_counter()
    with (
        running_dagster_dev(data, env) as dev,
        headless_chromium(tmp_path / "chromium_profile", chromium, timeout_ms=UI_TIMEOUT_MS) as browser,
    ):
        print(f"dagster dev ready: {time.perf_counter() - started:.1f}s")
        page = browser.new_page()
        # A fresh profile gets Dagster's newsletter prompt once, at any moment: dismiss it as a user would.
        page.add_locator_handler(
            page.get_by_text("Join the Dagster community"), lambda: page.get_by_role("button", name="Skip").click()
        )
        steps = UiSteps(page, SCREENSHOTS / "dagster_ui", context=lambda: f"--- dagster dev log ---\n{dev.log_tail()}")

        with steps.step("global lineage shows the layers"):
            page.goto(f"{dev.url}/asset-groups")
            for group in GROUPS:
                _graph_node(page, group).wait_for()

        with steps.step("activation lineage shows marts, pushes and the report"):
            page.goto(f"{dev.url}/locations/tessera/asset-groups/activation")
            for name in ACTIVATION_NODES:
                _graph_node(page, name).wait_for()

        with steps.step("launch the nightly job"):
            page.goto(f"{dev.url}/locations/tessera/jobs/nightly")
            assert dev.runs("nightly") == [], "the test's instance should start without runs"
            page.get_by_role("button", name="Materialize all").click()
            toast = page.get_by_text("Launched run")
            toast.wait_for()
            short_id = toast.locator("span").inner_text().strip()
            run_id = next(r["runId"] for r in dev.runs("nightly") if r["runId"].startswith(short_id))

        with steps.step("open the run from the job's runs"):
            page.get_by_role("tab", name="Runs").click()
            page.get_by_role("link").filter(has_text=short_id).first.click()
            page.wait_for_url(f"**/runs/{run_id}*")

        with steps.step("the run page shows success"):
            run = _wait_for_run(dev, run_id)
            failed = [s["stepKey"] for s in run["stepStats"] if s["status"] != "SUCCESS"]
            assert run["status"] == "SUCCESS", f"run {run_id} ended {run['status']}; steps not succeeded: {failed}"
            page.get_by_text("Success", exact=True).first.wait_for()

        with steps.step("the run report asset links this run's report"):
            page.goto(f"{dev.url}/assets/serving/run_report")
            # The `url` entry of the latest materialization: a link to this run's page on disk.
            link = page.locator(f'a[href^="file://"][href$="run_report_{run_id}.html"]').first
            href = link.get_attribute("href")
            report = Path(unquote(urlparse(href).path))
            assert report.name == f"run_report_{run_id}.html", href
            assert report.is_file(), f"the linked report {report} does not exist"
            assert (report.parent / "latest.html").read_text() == report.read_text()

        # The link is file://, which a page served over http may not open: load it as a bookmark would.
        with steps.step("the run report renders its sections and charts"):
            page.goto(href)
            assert run_id in page.title()
            for section_id in REPORT_SECTIONS:
                page.locator(f"section#{section_id} h2").wait_for()
            for section_id in CHARTED_SECTIONS:
                chart = page.locator(f"section#{section_id} svg").first
                chart.wait_for()
                box = chart.bounding_box()
                assert box and box["width"] > 0 and box["height"] > 0, f"the {section_id} chart is not drawn"
                assert page.locator(f"section#{section_id} svg rect").count() > 0, f"the {section_id} chart has no bars"
