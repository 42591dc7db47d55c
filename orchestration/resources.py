"""Resources shared by every asset that touches the warehouse."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from orchestration.paths import data_dir

# DuckDB allows one writer: every asset that writes the warehouse runs in this pool, whose
# limit is 1 (dagster.yaml), so two of them never hold the file at once.
WAREHOUSE_POOL = "warehouse"


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse and the dlt state kept beside it."""

    data_dir: str | None = None

    @property
    def root(self) -> Path:
        return Path(self.data_dir).resolve() if self.data_dir else data_dir()

    @property
    def path(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def pipelines_dir(self) -> Path:
        return self.root / "dlt"
