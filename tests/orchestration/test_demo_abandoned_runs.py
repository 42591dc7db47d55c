"""A demo killed mid-run leaves its run unfinished, holding the warehouse pool's one slot: the
next demo releases it instead of waiting for it forever."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import dagster as dg
from dagster import DagsterRun, DagsterRunStatus

from orchestration.demo import DEMO_HOST_TAG, DEMO_PID_TAG, release_abandoned_runs


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _run(instance, **tags: str) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name="nightly", run_id=run_id, status=DagsterRunStatus.STARTED, tags=tags))
    return run_id


def test_runs_of_dead_demos_are_failed_and_free_their_pool_slot(tmp_path):
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("warehouse", 1)
        here = socket.gethostname()
        dead = _run(instance, **{DEMO_PID_TAG: str(_dead_pid()), DEMO_HOST_TAG: here})
        storage.claim_concurrency_slot("warehouse", dead, "vendor_loads")
        alive = _run(instance, **{DEMO_PID_TAG: str(os.getpid()), DEMO_HOST_TAG: here})
        elsewhere = _run(instance, **{DEMO_PID_TAG: str(_dead_pid()), DEMO_HOST_TAG: f"not-{here}"})
        daemons = _run(instance)  # launched by the daemon: no demo tags

        assert [s.run_id for s in storage.get_concurrency_info("warehouse").claimed_slots] == [dead]
        assert release_abandoned_runs(instance) == [dead]

        assert storage.get_concurrency_info("warehouse").claimed_slots == []
        assert instance.get_run_by_id(dead).status == DagsterRunStatus.FAILURE
        for untouched in (alive, elsewhere, daemons):
            assert instance.get_run_by_id(untouched).status == DagsterRunStatus.STARTED
        assert release_abandoned_runs(instance) == []  # once only
