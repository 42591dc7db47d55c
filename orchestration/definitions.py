"""Tessera's Dagster code location: one place that collects every definition."""

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.defs.activation.pushes import push_assets
from orchestration.defs.ingestion.assets import vendor_loads
from orchestration.defs.privacy.after_failed_night import erasure_after_failed_night, erasure_job
from orchestration.defs.privacy.erasure import erased_identifiers
from orchestration.defs.quality.gates import quality_gate_checks
from orchestration.defs.quality.identity import IdentityGuardrails, identity_checks
from orchestration.defs.schedules import nightly_job, nightly_schedule
from orchestration.defs.sensors import run_failure_alert
from orchestration.defs.serving.analysts_copy import analysts_copy
from orchestration.defs.serving.run_report import run_report
from orchestration.defs.transform.dbt import dbt_models, dbt_project
from orchestration.resources import WarehouseResource

defs = dg.Definitions(
    assets=[vendor_loads, erased_identifiers, dbt_models, analysts_copy, *push_assets, run_report],
    asset_checks=[*identity_checks, *quality_gate_checks],
    jobs=[nightly_job, erasure_job],
    schedules=[nightly_schedule],
    sensors=[run_failure_alert, erasure_after_failed_night],
    resources={
        # dbt from this Python environment, so the UI works without an activated venv.
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=str(Path(sys.executable).parent / "dbt")),
        "warehouse": WarehouseResource(),
        "identity_guardrails": IdentityGuardrails(),
    },
)
