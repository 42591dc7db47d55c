"""The night's erasure requests, processed after the loads and before dbt and the pushes.

The asset is the tombstone `privacy.erased_identifiers`, which dbt reads as the source of
`stg_privacy__erased_identifiers`: so every dbt model, and every push downstream of them, runs
after the night's erasures. It loads the shop's requests into `raw_privacy.erasure_requests`,
then erases each new one everywhere (`activation.privacy.erase`). Deletions an email platform
did not accept on an earlier night are asked for again first (`activation.privacy.platform_retries`).
"""

import time

import dagster as dg

from activation.privacy import platform_retries
from activation.privacy.destinations import available_destinations
from activation.privacy.erase import erase_requests, pending_requests
from ingestion.pipelines import load, make_pipeline
from ingestion.privacy import privacy_source
from orchestration.defs.ingestion.assets import RAW_KEYS
from orchestration.defs.serving.analysts_copy import COPY_NAME
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource


@dg.asset(
    key=["privacy", "erased_identifiers"],
    group_name="privacy",
    kinds={"duckdb", "dlt"},
    deps=RAW_KEYS,
    pool=WAREHOUSE_POOL,
    description=(
        "Erasure requests: loads the shop's new requests, erases each person from the warehouse, "
        "load packages, the analysts' copy and the email platforms, and tombstones their hashed "
        "identifiers so no later load brings them back."
    ),
)
def erased_identifiers(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    started = time.perf_counter()
    pipeline = make_pipeline("privacy", warehouse.path, warehouse.pipelines_dir)
    load(privacy_source(), pipeline)
    requests = pending_requests(warehouse.path)
    left_at_platforms = platform_retries.waiting(str(warehouse.path))
    destinations, unavailable = available_destinations() if requests or left_at_platforms else ([], {})
    for name, reason in unavailable.items():
        context.log.warning(f"erasures not sent to {name}: {reason}")
    batch = erase_requests(
        warehouse.path,
        requests,
        destinations=destinations,
        pipelines_dir=warehouse.pipelines_dir,
        analysts_copy=warehouse.root / COPY_NAME,
        progress=context.log.info,
    )
    context.log.info(f"processed {len(batch.requests)} erasure request(s)")
    for request_id, reason in batch.rejected.items():
        context.log.warning(f"erasure request {request_id} cannot be processed as given ({reason}); left pending")
    still_at_platforms = platform_retries.waiting(str(warehouse.path))
    if still_at_platforms:
        context.log.warning(
            f"{still_at_platforms} deletion(s) at the email platforms not accepted yet "
            f"({platform_retries.TABLE}); the next run asks again"
        )
    return dg.MaterializeResult(
        metadata={
            "requests_processed": len(batch.requests),
            "requests_left_pending": dg.MetadataValue.json(batch.rejected),
            "rows_deleted_per_schema": dg.MetadataValue.json(batch.rows_by_schema()),
            "destinations": dg.MetadataValue.json({r.request_id: r.destinations for r in batch.requests}),
            "destinations_unavailable": dg.MetadataValue.json(unavailable),
            "platform_deletions_retried": dg.MetadataValue.json(batch.platform_retries),
            "platform_deletions_pending": still_at_platforms,
            "load_packages_deleted": batch.packages_deleted,
            "analysts_copy_republished": batch.analysts_copy_republished,
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
