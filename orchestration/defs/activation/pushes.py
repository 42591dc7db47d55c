"""Pushes: one asset per audience and destination, downstream of its dbt model.

Each destination first carries unsubscribes across platforms (`activation/<dest>/unsubscribes`),
then every audience that names it is synced (`activation/<dest>/<audience>`): only the changes
since the ledger's last delivery, consent first. The identity checks on `marts/customer_identifiers`
block: when one fails, no push of that night runs.

Run config (Launchpad), per asset: `dry_run` reports the plan and sends nothing;
`confirm_large_changes` lets a change larger than the audience's guard through.
"""

from contextlib import closing
from datetime import datetime

import dagster as dg
import duckdb

from activation.audiences import AudienceConfig, load_audiences
from activation.settings import destinations_from_env
from activation.sync.engine import GuardTripped, sync_audience, sync_suppressions
from orchestration.defs.schedules import run_now
from orchestration.defs.transform.dbt import dbt_project
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.retries import VENDOR_CALL_RETRY

DESTINATIONS = ("klaviyo", "mailchimp")
# Every push waits for these and for their blocking checks (a blocking check holds back only
# the assets that depend on its asset directly): the identity map, the consent-bearing customer
# table, the checkouts the abandonment audience is cut from, and the night's erasures.
GATES = [
    dg.AssetKey(["marts", "customer_identifiers"]),
    dg.AssetKey(["marts", "dim_customers"]),
    dg.AssetKey(["marts", "fct_checkouts"]),
    dg.AssetKey(["privacy", "erased_identifiers"]),
]


class PushConfig(dg.Config):
    dry_run: bool = False
    confirm_large_changes: bool = False


def _now(context: dg.AssetExecutionContext) -> datetime:
    return run_now(context.run)


def unsubscribes_asset(destination: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["activation", destination, "unsubscribes"],
        group_name="activation",
        kinds={destination},
        deps=GATES,
        pool=WAREHOUSE_POOL,
        retry_policy=VENDOR_CALL_RETRY,
        description=(
            f"Unsubscribes and spam complaints learned from the other email platform, suppressed in "
            f"{destination.title()} (only ever away from subscribed), once per address."
        ),
    )
    def _unsubscribes(context: dg.AssetExecutionContext, config: PushConfig, warehouse: WarehouseResource):
        target = destinations_from_env([destination])[destination]
        try:
            with duckdb.connect(str(warehouse.path)) as conn:
                counts = sync_suppressions(
                    conn, target, run_id=context.run_id, now=_now(context), dry_run=config.dry_run
                )
        finally:
            target.close()
        context.log.info(f"{destination}: {counts}")
        if counts["rejected"]:
            context.log.warning(f"{destination}: {counts['rejected']} suppressions refused; retried next run")
        return dg.MaterializeResult(metadata={**counts, "dry_run": config.dry_run})

    return _unsubscribes


def push_asset(audience: AudienceConfig, destination: str) -> dg.AssetsDefinition:
    where = audience.audience.klaviyo_list if destination == "klaviyo" else audience.audience.mailchimp_tag

    @dg.asset(
        key=["activation", destination, audience.name],
        group_name="activation",
        kinds={destination},
        deps=[dg.AssetKey(["marts", audience.name]), *GATES, dg.AssetKey(["activation", destination, "unsubscribes"])],
        pool=WAREHOUSE_POOL,
        retry_policy=VENDOR_CALL_RETRY,
        description=(
            f"`marts.{audience.name}` kept in sync with {destination.title()} ({where!r}): adds, updates and "
            f"removals since the last push, consented customers only, {audience.holdout_share:.0%} held out."
        ),
        metadata={"audience": audience.name, "destination": destination, "target": where},
    )
    def _push(context: dg.AssetExecutionContext, config: PushConfig, warehouse: WarehouseResource):
        target = destinations_from_env([destination])[destination]
        with duckdb.connect(str(warehouse.path)) as conn, closing(target):
            try:
                report = sync_audience(
                    conn,
                    audience,
                    target,
                    run_id=context.run_id,
                    now=_now(context),
                    dry_run=config.dry_run,
                    confirm=config.confirm_large_changes,
                )
            except GuardTripped as exc:
                # A tripped guard trips again on a retry: it waits for someone to confirm.
                raise dg.Failure(description=str(exc), metadata=exc.report.as_dict(), allow_retries=False) from None
        verb = "would be" if report.dry_run else "were"
        context.log.info(
            f"{destination}/{audience.name}: {report.planned_adds} adds, {report.planned_updates} updates, "
            f"{report.planned_removes} removals {verb} sent; {report.rejected} rejected, {report.skipped} skipped"
        )
        return dg.MaterializeResult(
            metadata={
                "dry_run": report.dry_run,
                "rows": report.rows,
                "adds": report.planned_adds if report.dry_run else report.added,
                # Of the adds: members refused or skipped last time, sent again.
                "retries": report.planned_retries,
                # Skipped last time and still not subscribed on that platform: not sent again.
                "waiting": report.waiting,
                "updates": report.planned_updates if report.dry_run else report.updated,
                "removals": report.planned_removes if report.dry_run else report.removed,
                "unchanged": report.unchanged,
                "errors": report.rejected,
                "skipped": report.skipped,
                "suppressed": report.suppressed,
                "held_out": report.held_out,
                "error_sample": dg.MetadataValue.json(report.errors),
            }
        )

    return _push


audiences = load_audiences(dbt_project.manifest_path)
push_assets = [unsubscribes_asset(d) for d in DESTINATIONS] + [
    push_asset(a, d) for a in audiences for d in DESTINATIONS if d in a.destinations
]
