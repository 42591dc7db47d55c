"""One Dagster asset per dlt resource of every source, keyed `raw_<vendor>/<resource>`, all
materialized by one step, `vendor_loads`, that reads every vendor at once and writes the
warehouse one vendor at a time (`ingestion.concurrent`).

The sources are listed once in `SOURCES`; everything else (assets, keys, groups, the writer
pool, metadata) follows from that list, so adding a source is adding one line there. Selecting
some of the assets (a rerun of one vendor, or one table) loads only their resources.
"""

import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dlt import DagsterDltTranslator, build_dlt_asset_specs
from dagster_dlt.translator import DltResourceTranslatorData
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.sources import DltSource

from ingestion.common.erasure import drop_tombstoned, read_tombstone
from ingestion.common.errors import CredentialRejected, RequestNotSent, setting
from ingestion.common.quarantine import QUARANTINE_TABLE
from ingestion.concurrent import VendorLoad, load_concurrently
from ingestion.hubspot import hubspot_source
from ingestion.instagram import instagram_source
from ingestion.klaviyo import klaviyo_source
from ingestion.mailchimp import mailchimp_source
from ingestion.mixpanel import mixpanel_source
from ingestion.pipelines import make_pipeline, restore_state
from ingestion.raw_tables import create_empty_tables, vendor_enabled
from ingestion.shopify import shopify_source
from orchestration.memory import release_freed_memory, released_text
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


def _specs(source: Source) -> tuple[list[dg.AssetSpec], dict[dg.AssetKey, str]]:
    """The source's asset specs, and the dlt resource behind each key, built from a source with
    placeholder settings and a pipeline whose warehouse is never opened (loading the code
    location must not touch DuckDB)."""
    spec_pipeline = make_pipeline(source.vendor, warehouse=_SPEC_DIR / "unused.duckdb", pipelines_dir=_SPEC_DIR)
    spec_source = source.factory(**source.spec_settings)
    translator = RawTranslator()
    specs = build_dlt_asset_specs(dlt_source=spec_source, dlt_pipeline=spec_pipeline, dagster_dlt_translator=translator)
    resources = {
        translator.get_asset_spec(DltResourceTranslatorData(resource=resource, pipeline=spec_pipeline)).key: name
        for name, resource in spec_source.selected_resources.items()
    }
    return list(specs), resources


_BUILT = {source.vendor: _specs(source) for source in SOURCES}
SPECS: list[dg.AssetSpec] = [spec for specs, _ in _BUILT.values() for spec in specs]
# asset key -> (vendor, dlt resource name)
RESOURCES_BY_KEY: dict[dg.AssetKey, tuple[str, str]] = {
    key: (vendor, name) for vendor, (_, resources) in _BUILT.items() for key, name in resources.items()
}
RAW_KEYS: list[dg.AssetKey] = list(RESOURCES_BY_KEY)
KEYS_BY_VENDOR: dict[str, list[dg.AssetKey]] = {vendor: list(resources) for vendor, (_, resources) in _BUILT.items()}


@dg.multi_asset(
    specs=SPECS,
    name="vendor_loads",
    description="Reads every vendor's API at once and writes the warehouse one vendor at a time.",
    can_subset=True,
    pool=WAREHOUSE_POOL,
    retry_policy=VENDOR_CALL_RETRY,
)
def vendor_loads(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    wanted, loaded_before = _resources_to_load(context)
    for key in loaded_before:
        yield dg.MaterializeResult(asset_key=key, metadata={"loaded_by": "an earlier attempt of this run"})
    # Read once here: the readers run beside the writer, and a read-only DuckDB connection
    # cannot open in a process that holds a read-write one.
    tombstone = read_tombstone(warehouse.path)
    failed: dict[str, str] = {}
    # Vendors whose settings are wrong (a missing setting, a rejected key): a retry fails the same.
    misconfigured: set[str] = set()
    jobs = []
    for source in SOURCES:
        if source.vendor not in wanted:
            continue
        try:
            enabled = vendor_enabled(source.vendor)
        except ValueError as error:
            failed[source.vendor] = _failure(context, source.vendor, "reading its settings", error)
            misconfigured.add(source.vendor)
            continue
        if not enabled:
            yield from _turned_off(context, source.vendor, warehouse)
            continue
        try:  # a missing setting or an unreadable state stops this vendor, not the others
            pipeline = make_pipeline(source.vendor, warehouse.path, warehouse.pipelines_dir)
            restore_state(pipeline)  # before the source is created: it reads its cursors
            dlt_source = source.factory()
        except Exception as error:
            failed[source.vendor] = _failure(context, source.vendor, "setting up", error)
            if _is_settings_error(error):
                misconfigured.add(source.vendor)
            continue
        if context.is_subset:
            dlt_source = dlt_source.with_resources(*wanted[source.vendor])
        # Records of people erased by an erasure request are dropped before dlt writes them.
        jobs.append(VendorLoad(source.vendor, drop_tombstoned(dlt_source, tombstone), pipeline))
    context.log.info(f"reading {', '.join(j.vendor for j in jobs)} at once; writing each as its read ends")

    try:
        for job in load_concurrently(jobs):
            if job.error is not None:
                failed[job.vendor] = _failure(context, job.vendor, job.failed_while, job.error)
                if _is_settings_error(job.error):
                    misconfigured.add(job.vendor)
                continue
            rows = sum(job.row_counts.values())
            context.log.info(
                f"{job.vendor}: {rows:,} rows read in {job.read_seconds:.1f} s, written in {job.write_seconds:.1f} s"
            )
            keys = [k for k in KEYS_BY_VENDOR[job.vendor] if k in context.selected_asset_keys]
            try:
                results = list(_materializations(job, keys, context))
            except Exception as error:  # the load is in; only its report could not be read
                context.log.warning(f"{job.vendor}: load report failed:\n{_traceback(error)}")
                results = [dg.MaterializeResult(asset_key=k, metadata={"report_failed": str(error)}) for k in keys]
            yield from results
    finally:
        # The rest of the night runs in this process, dbt beside it: what the reads freed
        # goes back to the machine rather than staying held by the process.
        jobs.clear()
        try:
            context.log.info(released_text(*release_freed_memory()))
        except Exception as error:  # housekeeping: never the reason a load fails
            context.log.warning(f"could not return freed memory: {error}")
    if failed:
        # The vendors that loaded stay loaded (their cursors moved); a retry of this step
        # loads only the ones named here.
        raise dg.Failure(
            description="; ".join(f"{vendor} {reason}" for vendor, reason in failed.items()),
            metadata={"failed_vendors": dg.MetadataValue.json(failed)},
            # Retried only when a retry can help: not a missing setting or a rejected key,
            # which would only be sent to the vendor again.
            allow_retries=not misconfigured.issuperset(failed),
        )


def _turned_off(
    context: dg.AssetExecutionContext, vendor: str, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    """A vendor the shop does not use: nothing read, its raw tables there (empty if never
    loaded), so the models that read them build."""
    with duckdb.connect(str(warehouse.path)) as con:
        created = create_empty_tables(con, vendor)
    variable = setting(vendor, "enabled")
    context.log.info(
        f"{vendor}: turned off ({variable}=false), not read"
        + (f"; created its raw tables empty: {', '.join(created)}" if created else "")
    )
    metadata = {"turned_off": dg.MetadataValue.text(f"{variable}=false")}
    for key in KEYS_BY_VENDOR[vendor]:
        if key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=key, metadata=metadata)


def _is_settings_error(error: BaseException | None) -> bool:
    """Whether `error` (or what it wraps: dlt wraps a source's errors) is a missing setting, a
    credential the vendor refused, or a request that could not be sent as set up (a key with a
    line break in it)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ConfigFieldMissingException | CredentialRejected | RequestNotSent):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _failure(context: dg.AssetExecutionContext, vendor: str, doing: str, error: BaseException) -> str:
    """Log a vendor's failure with its traceback; the one line the step's failure names."""
    context.log.error(f"{vendor}: {doing} failed:\n{_traceback(error)}")
    return f"{doing} failed: {error}"


def _traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def _resources_to_load(context: dg.AssetExecutionContext) -> tuple[dict[str, list[str]], list[dg.AssetKey]]:
    """{vendor: [resource]} of the selected assets and, on a retry of the step, the keys of the
    vendors it already loaded in this run (left out of the first)."""
    wanted: dict[str, list[str]] = {}
    for key in context.selected_asset_keys:
        vendor, resource = RESOURCES_BY_KEY[key]
        wanted.setdefault(vendor, []).append(resource)
    loaded_before: list[dg.AssetKey] = []
    if context.retry_number:
        for vendor in list(wanted):
            keys = [k for k in KEYS_BY_VENDOR[vendor] if k in context.selected_asset_keys]
            if all(_materialized_in_run(context, key) for key in keys):
                context.log.info(f"{vendor}: loaded by an earlier attempt of this run; not read again")
                del wanted[vendor]
                loaded_before += keys
    return wanted, loaded_before


def _materialized_in_run(context: dg.AssetExecutionContext, key: dg.AssetKey) -> bool:
    event = context.instance.get_latest_materialization_event(key)
    return event is not None and event.run_id == context.run.run_id


def _materializations(
    job: VendorLoad, keys: list[dg.AssetKey], context: dg.AssetExecutionContext
) -> Iterator[dg.MaterializeResult]:
    """What a data engineer asks after a load, per selected table: rows loaded, rows in the
    table, rows quarantined, new columns, and the table's columns."""
    pipeline = job.pipeline
    schema = pipeline.default_schema
    load_ids = [p.load_id for p in job.load_info.load_packages] if job.load_info else []
    new_columns: dict[str, set[str]] = {}
    for package in job.load_info.load_packages if job.load_info else []:
        for table_name, table in (package.schema_update or {}).items():
            new_columns.setdefault(table_name, set()).update(
                c for c in table.get("columns", {}) if not c.startswith("_dlt")
            )
    # Through the pipeline's own client: the same DuckDB configuration as the readers' clients.
    with pipeline.sql_client() as client:
        quarantined = _quarantined_by_resource(client, load_ids)
        for key in keys:
            table = key.path[-1]
            metadata: dict = {
                "rows_loaded": dg.MetadataValue.int(job.row_counts.get(table, 0)),
                "quarantined_rows": dg.MetadataValue.int(quarantined.get(table, 0)),
                "read_seconds": dg.MetadataValue.float(round(job.read_seconds, 1)),
            }
            try:  # a resource that only feeds other tables (repairs) has none of its own
                total = client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name(table)}")
                metadata["table_rows"] = dg.MetadataValue.int(total[0][0])
            except DatabaseUndefinedRelation:
                pass
            if new_columns.get(table):
                metadata["new_columns"] = dg.MetadataValue.text(", ".join(sorted(new_columns[table])))
            if table in schema.tables:
                columns = schema.get_table_columns(table)
                # Dagster's own keys: the UI shows them as the table's name and columns.
                metadata["dagster/table_name"] = dg.MetadataValue.text(f"{pipeline.dataset_name}.{table}")
                metadata["dagster/column_schema"] = dg.MetadataValue.table_schema(
                    dg.TableSchema(
                        columns=[dg.TableColumn(name, c.get("data_type") or "unknown") for name, c in columns.items()]
                    )
                )
            yield dg.MaterializeResult(asset_key=key, metadata=metadata)


def _quarantined_by_resource(client, load_ids: list[str]) -> dict[str, int]:
    """Rows this run set aside in the dataset's `quarantine` table, per resource."""
    if not load_ids:
        return {}
    try:
        rows = client.execute_sql(
            f"SELECT resource, count(*) FROM {client.make_qualified_table_name(QUARANTINE_TABLE)} "
            f"WHERE _dlt_load_id IN ({', '.join('%s' for _ in load_ids)}) GROUP BY 1",
            *load_ids,
        )
    except DatabaseUndefinedRelation:
        return {}
    return dict(rows or [])
