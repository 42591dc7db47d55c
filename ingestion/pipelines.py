"""dlt pipelines that load a vendor source into the warehouse's `raw_<vendor>` dataset."""

from __future__ import annotations

from pathlib import Path

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.sources import DltSource

from ingestion.common.erasure import drop_erased

# Parquet, not dlt's default insert_values: ~5x faster and ~30x less memory on nested events.
LOADER_FILE_FORMAT = "parquet"


# Primary keys a resource no longer declares, per vendor and table. dlt keeps a column's
# primary-key hint in the stored schema once it is there, whatever the resource says later, so
# a warehouse loaded before the change would go on merging with the old key. The hint is
# dropped from the local schema and the schema stored in the warehouse too: each nightly load
# drops the local state and restores it from there (`restore_state`), and retires them again.
# - klaviyo.list_memberships: with the key beside the merge key `list_id`, the merge's delete
#   joined every old member of a list with every new one (see ingestion/klaviyo).
RETIRED_PRIMARY_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "klaviyo": {"list_memberships": ("list_id", "profile_id")},
}


def make_pipeline(vendor: str, warehouse: Path, pipelines_dir: Path) -> dlt.Pipeline:
    """A pipeline whose state (cursors, pending load packages) lives beside the warehouse."""
    pipeline = dlt.pipeline(
        pipeline_name=f"tessera_{vendor}",
        destination=dlt.destinations.duckdb(credentials=str(warehouse)),
        dataset_name=f"raw_{vendor}",
        pipelines_dir=str(pipelines_dir),
        progress="log",
    )
    _retire_primary_keys(pipeline, RETIRED_PRIMARY_KEYS.get(vendor, {}))
    return pipeline


def _retire_primary_keys(pipeline: dlt.Pipeline, retired: dict[str, tuple[str, ...]]) -> None:
    if not retired or not pipeline.default_schema_name:
        return
    schema = pipeline.default_schema
    changed = False
    for table, columns in retired.items():
        stored = schema.tables.get(table, {}).get("columns", {})
        for column in columns:
            if stored.get(column, {}).pop("primary_key", None) is not None:
                changed = True
    if changed:
        # The warehouse first: saved locally first, a failed sync would leave nothing to change
        # on the next call while the warehouse still held the old key.
        pipeline.sync_schema()
        pipeline.schemas.save_schema(schema)


def restore_state(pipeline: dlt.Pipeline) -> None:
    """Replace the pipeline's local state (cursors, schemas, unloaded packages) with the state
    its last committed load wrote to the warehouse, before its source is created.

    The local folder is a cache: a run that crashed or was cancelled leaves packages there that
    were read but never written, and a run whose previous attempt could not open the warehouse
    (DuckDB's lock) finds it emptied. Dropping it and restoring from the warehouse gives the
    source the cursors of what was really loaded (Mixpanel appends on a first load, so a missing
    state would append its lookback twice), and a warehouse that cannot be opened fails the run
    before anything is read. Primary keys retired since the warehouse's schema was stored are
    retired again, as the restored schema brings them back."""
    pipeline.drop()
    pipeline.sync_destination()
    _retire_primary_keys(pipeline, RETIRED_PRIMARY_KEYS.get(pipeline.dataset_name.removeprefix("raw_"), {}))


def warehouse_of(pipeline: dlt.Pipeline) -> Path:
    """The DuckDB file `pipeline` loads into."""
    return Path(pipeline.destination.config_params["credentials"])


def load(source: DltSource, pipeline: dlt.Pipeline) -> LoadInfo:
    """Run `source` into the pipeline's warehouse, never writing a record of an erased person."""
    return pipeline.run(drop_erased(source, warehouse_of(pipeline)), loader_file_format=LOADER_FILE_FORMAT)
