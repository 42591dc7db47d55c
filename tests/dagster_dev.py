"""`dagster dev` (webserver and daemon, as `make dev` starts them) as a test fixture.

It runs in its own process group so that stopping it also stops the processes it spawns (the
daemon, the code server, a run worker); the group is killed even when the test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import requests

from orchestration.paths import PROJECT_ROOT
from tests.demo_runs import free_port

WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
RUNS_QUERY = """query ($job: String!) { runsOrError(filter: {pipelineName: $job}) {
    __typename ... on Runs { results { runId status } } } }"""


@dataclass
class DagsterDev:
    """A running `dagster dev`: its UI's address and the file its output goes to."""

    url: str
    log: Path

    def graphql(self, query: str, **variables) -> dict:
        """The `data` of one GraphQL answer from the webserver (the API the UI itself uses)."""
        resp = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=30)
        resp.raise_for_status()
        body = resp.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def runs(self, job: str) -> list[dict]:
        """The job's runs, newest first, as `{"runId", "status"}`."""
        return self.graphql(RUNS_QUERY, job=job)["runsOrError"]["results"]

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _wait_loaded(dev: DagsterDev, proc: subprocess.Popen, timeout: float) -> None:
    """Until the webserver answers and every code location has loaded without error."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited with code {proc.returncode}:\n{dev.log_tail()}")
        try:
            entries = dev.graphql(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
        except (requests.RequestException, ValueError) as exc:
            last = repr(exc)
        else:
            errors = [e["locationOrLoadError"] for e in entries if e["locationOrLoadError"]]
            errors = [e["message"] for e in errors if e["__typename"] == "PythonError"]
            if errors:
                raise RuntimeError("the code location failed to load:\n" + "\n".join(errors))
            if entries and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries):
                return
            last = repr(entries)
        time.sleep(1)
    raise RuntimeError(f"dagster dev was not ready within {timeout:.0f}s ({last}):\n{dev.log_tail()}")


def _stop(proc: subprocess.Popen) -> None:
    """Ctrl-C to the whole process group, as a terminal sends it; SIGKILL to whatever is left after a grace period."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
    # The daemon, the code server or a run worker may outlive their parent: the group goes in any case.
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@contextmanager
def running_dagster_dev(data: Path, env: Mapping[str, str], *, timeout: float = 180) -> Iterator[DagsterDev]:
    """`dagster dev -w workspace.yaml` on a free port with its DAGSTER_HOME and data under `data`.

    `env` adds to the process environment (the sandbox's settings); SOURCES__ settings of the
    calling shell are dropped so that only the given sandbox is reached."""
    home = data / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    full_env |= {**env, "DAGSTER_HOME": str(home), "TESSERA_DATA_DIR": str(data)}
    full_env["TESSERA_DAGSTER_URL"] = f"http://127.0.0.1:{port}"
    log = data / "dagster_dev.log"
    dagster = Path(sys.executable).parent / "dagster"
    cmd = [str(dagster), "dev", "-w", "workspace.yaml", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    dev = DagsterDev(url=f"http://127.0.0.1:{port}", log=log)
    try:
        _wait_loaded(dev, proc, timeout)
        yield dev
    finally:
        _stop(proc)
