"""The expectation suites as blocking Dagster asset checks: the night's quality gates.

One check, `expectations`, per suite, on the asset that writes the table. All of them block:
a failure on a raw table stops the dbt build (bad data does not reach the marts) and with it
every push; a failure on a mart the pushes read stops every push (`GATES` in the pushes).
The failed check's description names the expectations that failed, and its metadata holds
every expectation's observed value and bound.
"""

from datetime import datetime

import dagster as dg
import duckdb
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from ingestion.common.errors import setting
from ingestion.raw_tables import vendor_enabled
from orchestration.defs.quality.expectations import SUITES, TableSuite, run_suite
from orchestration.defs.quality.expectations.suite import SuiteResult
from orchestration.defs.schedules import run_now
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

CHECK_NAME = "expectations"


def suite_result_to_check(result: SuiteResult, previous_row_count: int | None) -> dg.AssetCheckResult:
    """The check result the UI shows: pass or fail, why, and every expectation's figures."""
    failed = result.failed
    table = "| | expectation | observed | expected | note |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {'pass' if o.passed else '**FAIL**'} | {o.expectation.name} | "
        f"{'n/a' if o.observed is None else f'{o.observed:g}'} {o.expectation.unit} | {o.bound} | {o.note} |"
        for o in result.outcomes
    )
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None
        if result.passed
        else f"{result.suite.name}: {len(failed)} of {len(result.outcomes)} expectations failed: "
        + "; ".join(o.describe() for o in failed),
        metadata={
            "failed_expectations": dg.MetadataValue.json(
                [
                    {
                        "expectation": o.expectation.name,
                        "observed": o.observed,
                        "min_value": o.min_value,
                        "max_value": o.max_value,
                        "unit": o.expectation.unit,
                    }
                    for o in failed
                ]
            ),
            "expectations": dg.MetadataValue.md(table),
            "row_count": result.row_count,
            "previous_row_count": previous_row_count if previous_row_count is not None else "none",
            "now": result.now.isoformat(),
            "seconds": round(result.seconds, 2),
        },
    )


def previous_row_count(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey) -> int | None:
    """The table's row count at the last run whose check passed (a failed night is no baseline)."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        check_key, limit=1, status={AssetCheckExecutionRecordStatus.SUCCEEDED}
    )
    evaluation = records[0].evaluation if records else None
    value = evaluation.metadata.get("row_count") if evaluation else None
    return int(value.value) if value is not None and isinstance(value.value, int) else None


def validate_table(warehouse: WarehouseResource, suite: TableSuite, now: datetime, previous: int | None):
    """Run `suite` on a read-only connection to the warehouse."""
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        return run_suite(con, suite, now, previous)


def gate_check(suite: TableSuite) -> dg.AssetChecksDefinition:
    """A blocking asset check that runs `suite` on the table of its asset."""
    asset_key = dg.AssetKey(suite.asset.split("/"))

    @dg.asset_check(
        asset=asset_key,
        name=CHECK_NAME,
        blocking=True,
        # It reads the file the loads write: a reader while dlt writes makes the load fail.
        pool=WAREHOUSE_POOL,
        description=f"Great Expectations suite on `{suite.name}`. {suite.description}",
        metadata={"expectations": [e.name for e in suite.expectations]},
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        vendor = asset_key.path[0].removeprefix("raw_")
        if asset_key.path[0].startswith("raw_") and not vendor_enabled(vendor):
            # Its table is empty by design: a row count or a freshness bound cannot hold.
            context.log.info(f"{suite.name}: not checked, {vendor} is turned off")
            return dg.AssetCheckResult(
                passed=True,
                description=f"Not checked: {vendor} is turned off ({setting(vendor, 'enabled')}=false).",
                metadata={"turned_off": True},
            )
        now = run_now(context.run)
        previous = previous_row_count(context.instance, dg.AssetCheckKey(asset_key, CHECK_NAME))
        result = validate_table(warehouse, suite, now, previous)
        log = context.log.info if result.passed else context.log.error
        log(f"{suite.name}: {len(result.outcomes) - len(result.failed)}/{len(result.outcomes)} expectations passed")
        return suite_result_to_check(result, previous)

    return _check


quality_gate_checks = [gate_check(suite) for suite in SUITES]
