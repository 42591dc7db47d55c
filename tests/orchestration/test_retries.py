"""Steps that call a vendor are retried with backoff; dbt is not (a failing model fails again)."""

from __future__ import annotations

import dagster as dg

from orchestration.definitions import defs
from orchestration.retries import VENDOR_CALL_RETRY


def _retry_policies() -> dict[str, dg.RetryPolicy | None]:
    graph = defs.resolve_asset_graph()
    return {
        key.to_user_string(): graph.get(key).assets_def.node_def.retry_policy
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
    }


def test_loads_and_pushes_retry_with_exponential_backoff_and_jitter():
    policies = _retry_policies()
    vendor_callers = [k for k in policies if k.startswith(("raw_", "activation/"))]
    assert len([k for k in vendor_callers if k.startswith("raw_")]) >= 20
    assert len([k for k in vendor_callers if k.startswith("activation/")]) >= 10
    for key in vendor_callers:
        assert policies[key] == VENDOR_CALL_RETRY, key
    assert VENDOR_CALL_RETRY.max_retries >= 1
    assert VENDOR_CALL_RETRY.backoff == dg.Backoff.EXPONENTIAL
    assert VENDOR_CALL_RETRY.jitter is not None


def test_dbt_models_are_not_retried():
    policies = _retry_policies()
    dbt_keys = [k for k in policies if k.startswith(("staging/", "intermediate/", "marts/", "seeds/"))]
    assert dbt_keys
    for key in dbt_keys:
        assert policies[key] is None, key


def test_the_nightly_job_adds_no_blanket_retry():
    # A job-wide op_retry_policy would retry dbt too.
    assert defs.resolve_job_def("nightly").op_retry_policy is None


def _load_hubspot_contacts(tmp_path, monkeypatch) -> tuple[str, list[dg.DagsterEvent]]:
    """Run the HubSpot contacts load alone, from a folder with no project secrets file; the
    step failure's description and every event of the run."""
    from orchestration.defs.ingestion.assets import vendor_loads
    from orchestration.resources import WarehouseResource

    monkeypatch.chdir(tmp_path)
    result = dg.materialize(
        [vendor_loads],
        selection=[dg.AssetKey(["raw_hubspot", "contacts"])],
        resources={"warehouse": WarehouseResource(data_dir=str(tmp_path))},
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    return failure.event_specific_data.user_failure_data.description, result.all_events


def test_a_load_that_fails_for_a_missing_setting_is_not_retried(tmp_path, monkeypatch):
    """A retry cannot supply a setting (nor make a vendor accept a key it refused): the step
    fails at once, naming the setting, instead of trying twice more minutes later."""
    for name in ("SOURCES__HUBSPOT__ACCESS_TOKEN", "SOURCES__HUBSPOT__CREDENTIALS__ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    description, _ = _load_hubspot_contacts(tmp_path, monkeypatch)
    assert "ACCESS_TOKEN" in description


def test_a_load_whose_key_cannot_be_sent_is_not_retried_and_the_key_stays_out(tmp_path, monkeypatch):
    """A token with a line break at its end (a CRLF env file) cannot go in a header; sending it
    again changes nothing, and requests' own error would quote the header, token and all."""
    token = "pat-na1-0123456789abcdef0123456789abcdef\r\n"
    monkeypatch.delenv("SOURCES__HUBSPOT__CREDENTIALS__ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("SOURCES__HUBSPOT__ACCESS_TOKEN", token)
    monkeypatch.setenv("SOURCES__HUBSPOT__BASE_URL", "http://127.0.0.1:9")
    description, events = _load_hubspot_contacts(tmp_path, monkeypatch)
    assert "SOURCES__HUBSPOT__ACCESS_TOKEN" in description, description
    logged = "\n".join(str(e.message) for e in events)
    assert token.strip() not in logged and token.strip() not in description
