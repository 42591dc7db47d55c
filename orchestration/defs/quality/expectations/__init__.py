"""Great Expectations suites on the raw and mart tables, declared in code, one module per layer."""

from orchestration.defs.quality.expectations.marts import MART_SUITES
from orchestration.defs.quality.expectations.raw import RAW_SUITES
from orchestration.defs.quality.expectations.suite import TableSuite, run_suite

SUITES: list[TableSuite] = [*RAW_SUITES, *MART_SUITES]

__all__ = ["MART_SUITES", "RAW_SUITES", "SUITES", "TableSuite", "run_suite"]
