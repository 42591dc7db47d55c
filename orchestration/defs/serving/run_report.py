"""The run report: after the marts and the pushes, an HTML page of what the night produced.

Written to `data/reports/run_report_<run_id>.html` and `data/reports/latest.html`, and linked
from the materialization's metadata, so a data engineer opens it from the run in the UI and a
marketer bookmarks `latest.html`. The page is self-contained (inline SVG, no script, no network).
"""

import time

import dagster as dg

from orchestration.defs.activation.pushes import push_assets
from orchestration.report import build_report, write_report
from orchestration.report.sections import CAMPAIGNS, CUSTOMERS, EXIT_CAUSES, FUNNEL, HOLDOUTS, IDENTIFIERS
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

REPORTS_DIR = "reports"
MARTS_READ = [
    dg.AssetKey(table.split(".")) for table in (FUNNEL, EXIT_CAUSES, CUSTOMERS, IDENTIFIERS, CAMPAIGNS, HOLDOUTS)
]


@dg.asset(
    key=["serving", "run_report"],
    group_name="serving",
    kinds={"html"},
    deps=[*MARTS_READ, *(key for push in push_assets for key in push.keys)],
    # Reads the warehouse: in the writers' pool so it never opens the file while a load writes it.
    pool=WAREHOUSE_POOL,
    description=(
        "An HTML report of the run: funnel by step, drop-off by exit cause, identity matching, audience sizes "
        "and changes, campaign and holdout results. data/reports/run_report_<run_id>.html and latest.html."
    ),
)
def run_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    started = time.perf_counter()
    report = build_report(warehouse.path, context.run.run_id)
    path, latest = write_report(report.html, warehouse.root / REPORTS_DIR, context.run.run_id)
    notes = [f"{s.id}: {note}" for s in report.sections for note in s.notes]
    for note in notes:
        context.log.info(note)
    context.log.info(f"run report written to {path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "url": dg.MetadataValue.url(path.as_uri()),
            "report": dg.MetadataValue.md(
                # The UI does not follow file:// links written in markdown (it blanks them), so the
                # text names the files and the `url` entry is the link that opens the page.
                f"Run report: `{path}` (open it with the `url` entry) · latest: `{latest}`\n\n"
                + "".join(f"- {name.replace('_', ' ')}: {value:,}\n" for name, value in report.figures.items())
            ),
            "latest": dg.MetadataValue.path(str(latest)),
            "notes": len(notes),
            **{name: value for name, value in report.figures.items()},
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
