"""A nightly run that fails before its erasure step still gets its erasure requests processed:
the sensor starts the erasure job, here on a real failed run of the nightly job."""

from __future__ import annotations

import json
import os

import dagster as dg
import duckdb

from orchestration.definitions import defs
from orchestration.defs.privacy.after_failed_night import ERASURE_KEY, erasure_after_failed_night
from orchestration.defs.schedules import NOW_TAG


def _failure_context(instance: dg.DagsterInstance, result) -> dg.RunFailureSensorContext:
    return dg.build_run_status_sensor_context(
        sensor_name="erasure_after_failed_night",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()


def test_a_night_whose_loads_fail_still_processes_its_erasure_requests(tmp_path, monkeypatch):
    # No vendor is configured (no settings, no secrets file to find them in): every load fails.
    for name in list(os.environ):
        if name.startswith(("SOURCES__", "ACTIVATION__", "DESTINATION__")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TESSERA_DATA_DIR", str(tmp_path / "data"))
    requests_file = tmp_path / "erasure_requests.jsonl"
    request = {"request_id": "req-1", "email": "left@example.com", "requested_at": "2026-11-20T10:00:00Z"}
    requests_file.write_text(json.dumps(request) + "\n")
    monkeypatch.setenv("SOURCES__PRIVACY__REQUESTS_FILE", str(requests_file))

    with dg.DagsterInstance.ephemeral() as instance:
        night = defs.resolve_job_def("nightly").execute_in_process(
            instance=instance, tags={NOW_TAG: "2026-11-21T03:00:00+00:00"}, raise_on_error=False
        )
        assert not night.success
        assert instance.get_latest_materialization_event(ERASURE_KEY) is None  # skipped with the loads

        requested = erasure_after_failed_night(_failure_context(instance, night))
        assert isinstance(requested, dg.RunRequest), requested
        assert requested.tags == {NOW_TAG: "2026-11-21T03:00:00+00:00"}
        assert requested.run_key == f"erasure-after-{night.run_id}"
        assert erasure_after_failed_night.job_name == "erasure"

        erasure = defs.resolve_job_def("erasure").execute_in_process(instance=instance, tags=requested.tags)
        assert erasure.success
        (materialized,) = erasure.get_asset_materialization_events()
        assert materialized.asset_key == ERASURE_KEY
        metadata = materialized.materialization.metadata
        assert metadata["requests_processed"].value == 1
        # No platform is configured: each is named once, with the setting to add.
        unavailable = metadata["destinations_unavailable"].value
        assert unavailable["klaviyo"].startswith("set ACTIVATION__KLAVIYO__API_KEY"), unavailable
        assert unavailable["mailchimp"].startswith("set ACTIVATION__MAILCHIMP__"), unavailable
        with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as con:
            pending = con.execute("SELECT count(*) FROM raw_privacy.erasure_requests").fetchone()[0]
        assert pending == 0  # the processed request's row is erased with the rest of the person

        # Asked about the same night again, the sensor sees the requests were processed since.
        assert isinstance(erasure_after_failed_night(_failure_context(instance, night)), dg.SkipReason)


def _night_of_stand_ins(instance: dg.DagsterInstance, *, erasure_fails: bool = False):
    """A failed run of a job named like the nightly: an erasure step, then a push that fails."""

    @dg.asset(key=ERASURE_KEY)
    def erased_identifiers() -> None:
        if erasure_fails:
            raise RuntimeError("the warehouse is locked")

    @dg.asset(deps=[erased_identifiers])
    def push() -> None:
        raise ConnectionError("the platform is down")

    job = dg.define_asset_job("nightly", selection=[ERASURE_KEY, push.key])
    stand_ins = dg.Definitions(assets=[erased_identifiers, push], jobs=[job])
    result = stand_ins.resolve_job_def("nightly").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return result


def test_a_night_that_fails_after_its_erasure_step_starts_no_erasure_run():
    with dg.DagsterInstance.ephemeral() as instance:
        night = _night_of_stand_ins(instance)
        assert isinstance(erasure_after_failed_night(_failure_context(instance, night)), dg.SkipReason)


def test_only_a_failed_nightly_run_starts_an_erasure_run():
    with dg.DagsterInstance.ephemeral() as instance:
        night = _night_of_stand_ins(instance, erasure_fails=True)
        assert isinstance(erasure_after_failed_night(_failure_context(instance, night)), dg.RunRequest)
        other = dg.materialize([dg.asset(name="orders")(lambda: 1 / 0)], instance=instance, raise_on_error=False)
        assert isinstance(erasure_after_failed_night(_failure_context(instance, other)), dg.SkipReason)


def test_the_sensor_watches_shell_launched_runs_too():
    sensor = defs.resolve_sensor_def("erasure_after_failed_night")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor._monitor_all_code_locations  # no public accessor exists
