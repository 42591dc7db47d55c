"""dlt pipelines that load a vendor source into the warehouse's `raw_<vendor>` dataset."""

from __future__ import annotations

from pathlib import Path

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.sources import DltSource

from ingestion.common.erasure import drop_erased

# Parquet, not dlt's default insert_values: ~5x faster and ~30x less memory on nested events.
LOADER_FILE_FORMAT = "parquet"


def make_pipeline(vendor: str, warehouse: Path, pipelines_dir: Path) -> dlt.Pipeline:
    """A pipeline whose state (cursors, pending load packages) lives beside the warehouse."""
    return dlt.pipeline(
        pipeline_name=f"tessera_{vendor}",
        destination=dlt.destinations.duckdb(credentials=str(warehouse)),
        dataset_name=f"raw_{vendor}",
        pipelines_dir=str(pipelines_dir),
        progress="log",
    )


def load(source: DltSource, pipeline: dlt.Pipeline) -> LoadInfo:
    """Run `source` into the pipeline's warehouse, never writing a record of an erased person."""
    warehouse = Path(pipeline.destination.config_params["credentials"])
    return pipeline.run(drop_erased(source, warehouse), loader_file_format=LOADER_FILE_FORMAT)
