"""The run report: an HTML page of what the night produced (funnel, exit causes, identity
matching, audiences pushed, campaign and holdout results), read from the warehouse.

Plain Python over a DuckDB file, so it can be written without Dagster; the `serving/run_report`
asset writes it after each run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from orchestration.alerts import run_link
from orchestration.report.page import render_page
from orchestration.report.sections import Section, read_sections

LATEST_NAME = "latest.html"


@dataclass(frozen=True)
class RunReport:
    html: str
    sections: list[Section]

    @property
    def figures(self) -> dict[str, int | float]:
        return {name: value for s in self.sections for name, value in s.figures.items()}


def build_report(warehouse: Path, run_id: str, generated_at: datetime | None = None) -> RunReport:
    """Read every section from `warehouse` (read-only) and render the page for `run_id`."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        sections = read_sections(con, run_id)
    html = render_page(
        sections, run_id=run_id, generated_at=generated_at or datetime.now(UTC), run_link=run_link(run_id)
    )
    return RunReport(html=html, sections=sections)


def write_report(html: str, reports_dir: Path, run_id: str) -> tuple[Path, Path]:
    """`run_report_<run_id>.html`, and `latest.html` replaced in one step (never half-written)."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    report = reports_dir / f"run_report_{run_id}.html"
    report.write_text(html, encoding="utf-8")
    latest = reports_dir / LATEST_NAME
    partial = reports_dir / f".{LATEST_NAME}.partial-{os.getpid()}"
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, latest)
    return report, latest
