"""HubSpot CRM objects, loaded by dlt into `raw_hubspot`."""

import tempfile
from pathlib import Path

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from ingestion.hubspot import hubspot_source
from ingestion.pipelines import LOADER_FILE_FORMAT, make_pipeline
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource


class RawTranslator(DagsterDltTranslator):
    """Asset keys `raw_<vendor>/<table>`, matching dbt's `source('<vendor>', '<table>')`."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        vendor = data.pipeline.dataset_name.removeprefix("raw_") if data.pipeline else "unknown"
        return spec.replace_attributes(
            key=dg.AssetKey([f"raw_{vendor}", data.resource.name]),
            deps=[],
            group_name="ingestion",
            kinds={"dlt", "duckdb"},
        )


# For asset specs only: the pipeline that runs is built at run time from the warehouse resource,
# so importing the code location never touches the warehouse or the project's dlt state.
_SPEC_DIR = Path(tempfile.gettempdir()) / "tessera-dlt-specs"
_spec_pipeline = make_pipeline("hubspot", warehouse=_SPEC_DIR / "unused.duckdb", pipelines_dir=_SPEC_DIR)


@dlt_assets(
    dlt_source=hubspot_source(base_url="http://unused", access_token="unused"),
    dlt_pipeline=_spec_pipeline,
    name="hubspot",
    dagster_dlt_translator=RawTranslator(),
    pool=WAREHOUSE_POOL,
)
def hubspot_assets(context: dg.AssetExecutionContext, dlt: DagsterDltResource, warehouse: WarehouseResource):
    pipeline = make_pipeline("hubspot", warehouse.path, warehouse.pipelines_dir)
    yield from dlt.run(
        context=context, dlt_source=hubspot_source(), dlt_pipeline=pipeline, loader_file_format=LOADER_FILE_FORMAT
    )
