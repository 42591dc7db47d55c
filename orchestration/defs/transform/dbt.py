"""The dbt project as Dagster assets: staging, intermediate and marts."""

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets
from dagster_dbt.core import dbt_cli_event

from orchestration.defs.schedules import run_logical_now
from orchestration.paths import DBT_PROJECT_DIR
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)

# The run's "now" as dbt's tessera_now() macro reads it.
DBT_NOW_ENV = "TESSERA_DBT_NOW"


class TesseraDbtTranslator(DagsterDbtTranslator):
    """Groups come from the dbt folder (staging, intermediate, marts), never from model names."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "transform"

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            # Same keys as the dlt assets, so lineage runs from load to mart. A dlt child table
            # (`orders__line_items`) is written by its parent's resource, so it is that asset.
            table = dbt_resource_props["name"].split("__")[0]
            return dg.AssetKey([dbt_resource_props["schema"], table])
        return super().get_asset_key(dbt_resource_props)


class _SourceTestsAreObservations(logging.Filter):
    """dbt's tests of the raw tables (`source_unique_...`, `source_not_null_...`) run with every
    build and are recorded on the raw assets as observations; the raw assets' blocking checks are
    the expectations in `defs/quality`. dagster-dbt warns about each one, every night ("likely
    executed due to dbt indirect selection", which is not why), burying the warnings that matter.
    Making them asset checks instead put the raw assets' checks in this step and made Dagster
    run dbt three times a night."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(
            "Logging an `AssetObservation` instead of an `AssetCheckResult` for dbt test `source_"
        )


dbt_cli_event.logger.addFilter(_SourceTestsAreObservations())


def _manifest_path():
    path = dbt_project.manifest_path
    if not path.exists():
        raise FileNotFoundError(
            f"dbt manifest not found at {path}. Build it once with `make setup` (runs `dbt parse` in dbt_project/)."
        )
    return path


@dbt_assets(
    manifest=_manifest_path(),
    project=dbt_project,
    # Child tables share their parent's asset key (see the translator).
    dagster_dbt_translator=TesseraDbtTranslator(DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True)),
    pool=WAREHOUSE_POOL,
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    # dbt runs as a subprocess and reads the warehouse path from its profile's env_var.
    os.environ["TESSERA_WAREHOUSE"] = str(warehouse.path)
    # Unit tests check the models' logic on fixed inputs, not the night's data: they run in the
    # test suite (tests/transform/test_dbt_unit_tests.py), as dbt advises, not every night.
    args = ["build", "--exclude-resource-type", "unit_test"]
    # dbt.log beside the warehouse, as the console shows it: at debug level it grows 10 MB a night.
    args += ["--log-level-file", "info", "--log-format-file", "text"]
    # "now" goes in the environment, not --vars: changed vars make dbt re-parse the whole project.
    now = run_logical_now(context.run.tags)
    if now:
        context.log.info(f"time rules read now = {now}")
        os.environ[DBT_NOW_ENV] = now
    else:
        os.environ.pop(DBT_NOW_ENV, None)
    yield from dbt.cli(args, context=context, target_path=dbt_target_path(warehouse)).stream()


def dbt_target_path(warehouse: WarehouseResource) -> Path:
    """dbt's artifacts for this warehouse, kept from run to run beside it. dbt's parse state
    (partial_parse.msgpack) holds the profile, so it serves the next run only when it belongs to
    the same warehouse; runs on one warehouse never overlap (the warehouse pool), so neither do
    their artifacts."""
    return warehouse.root / "dbt_target"
