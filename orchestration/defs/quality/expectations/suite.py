"""Expectation suites on warehouse tables: DuckDB computes each metric, Great Expectations judges it.

A suite is a handful of expectations on one table (volume, nulls, ranges, uniqueness,
freshness). Every expectation is one SQL aggregate, so a whole suite is a single scan of its
table inside DuckDB and only one row of numbers leaves the database: reading 16M events into
pandas to let GX count them would cost minutes and gigabytes. GX then validates that row of
metrics against the bounds with its own expectations, and its results (observed value, bounds,
success) are what the Dagster checks report.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import duckdb

# Stands for the run's "now" (a TIMESTAMPTZ literal) inside metric SQL.
NOW = "{now}"


@dataclass(frozen=True)
class Expectation:
    """One rule on one table: a SQL aggregate over the table and the bounds it must stay within.

    `drop_share` makes the lower bound relative to the row count of the last passing run
    (`previous * (1 - drop_share)`), for "the table did not shrink sharply"."""

    name: str
    metric_sql: str
    min_value: float | None = None
    max_value: float | None = None
    unit: str = ""
    drop_share: float | None = None


def row_count_between(min_rows: int = 1, max_rows: int | None = None) -> Expectation:
    """The table holds at least `min_rows` (and at most `max_rows`) rows."""
    return Expectation("row count", "count(*)", min_value=min_rows, max_value=max_rows, unit="rows")


def no_sharp_drop(max_drop_share: float = 0.5) -> Expectation:
    """The row count fell by at most this share since the last run whose checks passed."""
    return Expectation(
        f"row count not down more than {max_drop_share:.0%} on the last passing run",
        "count(*)",
        unit="rows",
        drop_share=max_drop_share,
    )


def not_null(column: str) -> Expectation:
    """No row has a null `column`."""
    return Expectation(
        f"{column} not null", f'count(*) FILTER (WHERE "{column}" IS NULL)', max_value=0, unit="null rows"
    )


def unique(*columns: str) -> Expectation:
    """No two rows share a value of `columns` (rows with a null key are left to `not_null`)."""
    key = ", ".join(f'"{c}"' for c in columns)
    distinct = f"count(DISTINCT {key})" if len(columns) == 1 else f"count(DISTINCT ({key}))"
    non_null = " AND ".join(f'"{c}" IS NOT NULL' for c in columns)
    return Expectation(
        f"{'+'.join(columns)} unique",
        f"count(*) FILTER (WHERE {non_null}) - {distinct}",
        max_value=0,
        unit="duplicate rows",
    )


def at_least(column: str, minimum: float, sql: str | None = None) -> Expectation:
    """The smallest `column` (or the SQL expression `sql`, e.g. a cast) is at least `minimum`."""
    return Expectation(f"{column} >= {minimum:g}", f"min({sql or _quoted(column)})", min_value=minimum)


def between(column: str, low: float, high: float) -> list[Expectation]:
    """Every `column` lies in [low, high] (a rate in [0, 1], a score)."""
    return [
        Expectation(f"{column} >= {low:g}", f"min({_quoted(column)})", min_value=low),
        Expectation(f"{column} <= {high:g}", f"max({_quoted(column)})", max_value=high),
    ]


def not_in_future(column: str, tolerance_hours: float = 1) -> Expectation:
    """The newest `column` is not later than the run's now (plus a clock-skew tolerance)."""
    return Expectation(
        f"{column} not in the future",
        f"date_diff('second', {NOW}, max({_quoted(column)})::TIMESTAMPTZ) / 3600.0",
        max_value=tolerance_hours,
        unit="hours after now",
    )


def fresh(column: str, max_age_hours: float) -> Expectation:
    """The newest `column` is at most `max_age_hours` older than the run's now."""
    return Expectation(
        f"newest {column} within {max_age_hours:g} h",
        f"date_diff('second', max({_quoted(column)})::TIMESTAMPTZ, {NOW}) / 3600.0",
        max_value=max_age_hours,
        unit="hours old",
    )


def _quoted(column: str) -> str:
    return f'"{column}"'


@dataclass(frozen=True)
class TableSuite:
    """The expectations on one warehouse table, guarding the Dagster asset that writes it."""

    asset: str  # the asset key as a path, `raw_shopify/orders`; the table is `raw_shopify.orders`
    expectations: tuple[Expectation, ...]
    description: str

    @property
    def table(self) -> str:
        schema, name = self.asset.split("/")
        return f'"{schema}"."{name}"'

    @property
    def name(self) -> str:
        return self.asset.replace("/", ".")


@dataclass(frozen=True)
class Outcome:
    """How one expectation fared: what was observed and the bounds it was held to."""

    expectation: Expectation
    observed: float | None
    min_value: float | None
    max_value: float | None
    passed: bool
    note: str = ""

    @property
    def bound(self) -> str:
        if self.min_value is not None and self.max_value is not None:
            return f"between {self.min_value:g} and {self.max_value:g}"
        if self.min_value is not None:
            return f">= {self.min_value:g}"
        if self.max_value is not None:
            return f"<= {self.max_value:g}"
        return "none"

    def describe(self) -> str:
        observed = "n/a" if self.observed is None else f"{self.observed:g}"
        unit = f" {self.expectation.unit}" if self.expectation.unit else ""
        return f"{self.expectation.name}: observed {observed}{unit}, expected {self.bound}"


@dataclass
class SuiteResult:
    suite: TableSuite
    now: datetime
    row_count: int
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]


def compute_metrics(con: duckdb.DuckDBPyConnection, suite: TableSuite, now: datetime) -> list[float | None]:
    """Row count and every expectation's metric, in one scan of the table inside DuckDB."""
    literal = f"TIMESTAMPTZ '{now.astimezone(UTC).isoformat()}'"
    columns = ["count(*)"] + [e.metric_sql.replace(NOW, literal) for e in suite.expectations]
    row = con.execute(f"SELECT {', '.join(columns)} FROM {suite.table}").fetchall()[0]
    return [None if v is None else float(v) for v in row]


def run_suite(
    con: duckdb.DuckDBPyConnection, suite: TableSuite, now: datetime, previous_row_count: int | None = None
) -> SuiteResult:
    """Validate `suite` on the warehouse behind `con` at the run's `now`.

    `previous_row_count` is the table's size at the last passing run; without it the
    expectations on a sharp drop pass with a note (nothing to compare with yet)."""
    started = time.perf_counter()
    row_count, *metrics = compute_metrics(con, suite, now)
    result = SuiteResult(suite=suite, now=now, row_count=int(row_count or 0))

    # Outcomes keep the suite's order; the ones GX judges are filled in after it ran.
    outcomes: list[Outcome | None] = []
    judged: list[tuple[int, Expectation, float]] = []
    for expectation, observed in zip(suite.expectations, metrics, strict=True):
        if expectation.drop_share is not None:
            if previous_row_count is None:
                outcomes.append(Outcome(expectation, observed, None, None, True, "no earlier passing run to compare"))
                continue
            floor = math.floor(previous_row_count * (1 - expectation.drop_share))
            expectation = replace(expectation, min_value=floor)
        if observed is None:
            # An aggregate over no non-null values: nothing can break the bound (emptiness and
            # missing keys have their own expectations).
            outcomes.append(Outcome(expectation, None, expectation.min_value, expectation.max_value, True, "no values"))
            continue
        judged.append((len(outcomes), expectation, observed))
        outcomes.append(None)

    for (index, _, _), outcome in zip(judged, _validate_with_gx(suite, [(e, v) for _, e, v in judged]), strict=True):
        outcomes[index] = outcome
    result.outcomes = [o for o in outcomes if o is not None]
    result.seconds = time.perf_counter() - started
    return result


def _validate_with_gx(suite: TableSuite, judged: list[tuple[Expectation, float]]) -> list[Outcome]:
    """GX validates the one-row frame of metrics, one `expect_column_max_to_be_between` per
    expectation (the max of a single value is that value, and GX reports it as observed)."""
    if not judged:
        return []
    # Imported here: GX takes 5-20 s to import, which the code location should not pay at load.
    import great_expectations as gx
    import pandas as pd

    frame = pd.DataFrame([{f"m{i}": observed for i, (_, observed) in enumerate(judged)}])
    gx_suite = gx.ExpectationSuite(
        name=suite.name,
        expectations=[
            gx.expectations.ExpectColumnMaxToBeBetween(
                column=f"m{i}", min_value=e.min_value, max_value=e.max_value, meta={"expectation": e.name}
            )
            for i, (e, _) in enumerate(judged)
        ],
    )
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # A bar per suite of a one-row frame is noise: at a night's 25 suites it buried the run's log.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (
        context.data_sources.add_pandas("warehouse_metrics")
        .add_dataframe_asset(suite.name)
        .add_batch_definition_whole_dataframe("metrics")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    validation = batch.validate(gx_suite, result_format="BASIC")
    by_column = {r.expectation_config.kwargs["column"]: r for r in validation.results}
    outcomes = []
    for i, (expectation, observed) in enumerate(judged):
        gx_result = by_column[f"m{i}"]
        failure = gx_result.exception_info.get("exception_message") if gx_result.exception_info else None
        outcomes.append(
            Outcome(
                expectation,
                float(gx_result.result.get("observed_value", observed)),
                expectation.min_value,
                expectation.max_value,
                bool(gx_result.success),
                f"GX could not evaluate it: {failure}" if failure else "",
            )
        )
    return outcomes
