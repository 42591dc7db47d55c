"""One Dagster asset per dlt resource of every source, keyed `raw_<vendor>/<resource>`.

The sources are listed once in `SOURCES`; everything else (assets, keys, groups, the writer
pool, metadata) follows from that list, so adding a source is adding one line there.
"""

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, build_dlt_asset_specs
from dagster_dlt.translator import DltResourceTranslatorData
from dlt.sources import DltSource

from ingestion.common.erasure import drop_erased
from ingestion.common.quarantine import QUARANTINE_TABLE
from ingestion.hubspot import hubspot_source
from ingestion.instagram import instagram_source
from ingestion.klaviyo import klaviyo_source
from ingestion.mailchimp import mailchimp_source
from ingestion.mixpanel import mixpanel_source
from ingestion.pipelines import LOADER_FILE_FORMAT, make_pipeline, restore_state
from ingestion.shopify import shopify_source
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.retries import VENDOR_CALL_RETRY


@dataclass(frozen=True)
class Source:
    vendor: str
    factory: Callable[..., DltSource]
    # Placeholder settings so the source can be built at import for its asset specs; the
    # real settings are read by dlt when the asset runs.
    spec_settings: dict[str, str]
    description: str


SOURCES: list[Source] = [
    Source(
        "mixpanel",
        mixpanel_source,
        {"base_url": "http://spec", "project_id": "0", "username": "spec", "secret": "spec"},
        "Mixpanel raw event export: every tracked event, anonymous and known",
    ),
    Source(
        "hubspot",
        hubspot_source,
        {"base_url": "http://spec", "access_token": "spec"},
        "HubSpot CRM v3: contacts, companies and deals",
    ),
    Source(
        "shopify",
        shopify_source,
        {"base_url": "http://spec", "access_token": "spec"},
        "Shopify Admin REST: customers, orders, products, abandoned checkouts",
    ),
    Source(
        "klaviyo",
        klaviyo_source,
        {"base_url": "http://spec", "api_key": "spec"},
        "Klaviyo: profiles with consent, lists and memberships, metrics, campaigns, email events",
    ),
    Source(
        "mailchimp",
        mailchimp_source,
        {"base_url": "http://spec", "api_key": "spec-us21"},
        "Mailchimp Marketing v3: audiences, members, campaigns, email activity",
    ),
    Source(
        "instagram",
        instagram_source,
        {"base_url": "http://spec", "access_token": "spec", "ig_user_id": "0"},
        "Instagram Graph API: the brand's media, comments on them, and mentions",
    ),
]


class RawTranslator(DagsterDltTranslator):
    """Asset keys `raw_<vendor>/<table>`, the same keys dbt gives `source('<vendor>', '<table>')`."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        dataset = data.pipeline.dataset_name if data.pipeline else "raw_unknown"
        return spec.replace_attributes(
            key=dg.AssetKey(
                [dataset, data.resource.table_name if isinstance(data.resource.table_name, str) else data.resource.name]
            ),
            deps=[],
            group_name="ingestion",
            kinds={"dlt", "duckdb"},
            owners=["team:data-engineering"],
        )


_SPEC_DIR = Path(tempfile.gettempdir()) / "tessera-dlt-specs"


def _quarantined_by_resource(warehouse: Path, dataset: str, load_ids: list[str]) -> dict[str, int]:
    """Rows this run set aside in `<dataset>.quarantine`, per resource."""
    if not load_ids:
        return {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [dataset, QUARANTINE_TABLE],
        ).fetchall()[0][0]
        if not exists:
            return {}
        rows = con.execute(
            f'SELECT resource, count(*) FROM "{dataset}"."{QUARANTINE_TABLE}" '
            f"WHERE _dlt_load_id IN ({','.join('?' * len(load_ids))}) GROUP BY 1",
            load_ids,
        ).fetchall()
    return dict(rows)


def build_source_assets(source: Source) -> dg.AssetsDefinition:
    spec_pipeline = make_pipeline(source.vendor, warehouse=_SPEC_DIR / "unused.duckdb", pipelines_dir=_SPEC_DIR)

    # What `@dlt_assets` does (specs from the source, one subsettable multi-asset), spelled out
    # because that decorator takes no retry policy.
    @dg.multi_asset(
        specs=build_dlt_asset_specs(
            dlt_source=source.factory(**source.spec_settings),
            dlt_pipeline=spec_pipeline,
            dagster_dlt_translator=RawTranslator(),
        ),
        name=f"{source.vendor}_source",
        can_subset=True,
        pool=WAREHOUSE_POOL,
        retry_policy=VENDOR_CALL_RETRY,
    )
    def _assets(context: dg.AssetExecutionContext, dlt: DagsterDltResource, warehouse: WarehouseResource):
        pipeline = make_pipeline(source.vendor, warehouse.path, warehouse.pipelines_dir)
        restore_state(pipeline)  # before the source is created: it reads its cursors
        events = list(
            dlt.run(
                context=context,
                # Records of people erased by an erasure request are dropped before dlt writes them.
                dlt_source=drop_erased(source.factory(), warehouse.path),
                dlt_pipeline=pipeline,
                loader_file_format=LOADER_FILE_FORMAT,
            )
        )
        yield from _with_load_report(events, pipeline, warehouse.path)

    return _assets


def _with_load_report(events: list[Any], pipeline, warehouse: Path) -> Iterator[Any]:
    """Add what a data engineer asks after a load: rows in the table, rows quarantined, new columns."""
    load_ids = [p.load_id for p in pipeline.last_trace.last_load_info.load_packages] if pipeline.last_trace else []
    quarantined = _quarantined_by_resource(warehouse, pipeline.dataset_name, load_ids)
    new_columns: dict[str, list[str]] = {}
    for package in pipeline.last_trace.last_load_info.load_packages if pipeline.last_trace else []:
        for table_name, table in (package.schema_update or {}).items():
            new_columns.setdefault(table_name, []).extend(
                c for c in table.get("columns", {}) if not c.startswith("_dlt")
            )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for event in events:
            table = event.asset_key.path[-1]
            extra = {"quarantined_rows": dg.MetadataValue.int(quarantined.get(table, 0))}
            exists = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [pipeline.dataset_name, table],
            ).fetchall()[0][0]
            if exists:  # a resource that only feeds other tables (repairs) has none of its own
                total = con.execute(f'SELECT count(*) FROM "{pipeline.dataset_name}"."{table}"').fetchall()[0][0]
                extra["table_rows"] = dg.MetadataValue.int(total)
            if new_columns.get(table):
                extra["new_columns"] = dg.MetadataValue.text(", ".join(sorted(set(new_columns[table]))))
            yield dg.MaterializeResult(asset_key=event.asset_key, metadata={**(event.metadata or {}), **extra})


source_assets = [build_source_assets(source) for source in SOURCES]
