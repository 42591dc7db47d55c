"""Over-merge guards on the identity map, run as blocking asset checks.

An over-merge sends one person's cart to another person, so these checks are blocking: when
one fails, nothing downstream of `customer_identifiers` (audiences, pushes) runs that night, and
the check's metadata says which customers or changes tripped it.
"""

import dagster as dg
import duckdb

from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

CUSTOMER_IDENTIFIERS = dg.AssetKey(["marts", "customer_identifiers"])

# Devices and checkout tokens are not counted: a person has any number of them.
_PERSON_KINDS = "kind NOT IN ('mixpanel_device', 'shopify_checkout')"


class IdentityGuardrails(dg.ConfigurableResource):
    """Limits beyond which the identity map is taken to have merged different people."""

    max_identifiers_per_customer: int = 25
    # Share of identifiers already known last run that may change customer in one run.
    max_changed_share: float = 0.02


def _query(warehouse: WarehouseResource, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        return con.execute(sql).fetchall()


@dg.asset_check(
    asset=CUSTOMER_IDENTIFIERS,
    blocking=True,
    # It reads the warehouse: a reader while dlt writes makes the load fail.
    pool=WAREHOUSE_POOL,
    description="No customer holds more person identifiers (emails, phones, accounts) than one person has.",
)
def customers_within_size_limit(
    warehouse: WarehouseResource, identity_guardrails: IdentityGuardrails
) -> dg.AssetCheckResult:
    limit = identity_guardrails.max_identifiers_per_customer
    largest = _query(
        warehouse,
        f"SELECT customer_id, count(*) AS identifiers, string_agg(DISTINCT kind, ', ' ORDER BY kind) "
        f"FROM intermediate.int_identity__resolved WHERE {_PERSON_KINDS} "
        f"GROUP BY customer_id ORDER BY identifiers DESC, customer_id LIMIT 5",
    )
    worst = largest[0][1] if largest else 0
    return dg.AssetCheckResult(
        passed=worst <= limit,
        metadata={
            "limit": limit,
            "largest_customer_identifiers": worst,
            "largest_customers": dg.MetadataValue.md(
                "| customer | identifiers | kinds |\n|---|---|---|\n"
                + "\n".join(f"| {c} | {n} | {k} |" for c, n, k in largest)
            ),
        },
        description=None if worst <= limit else f"a customer holds {worst} identifiers (limit {limit})",
    )


@dg.asset_check(
    asset=CUSTOMER_IDENTIFIERS,
    blocking=True,
    # It reads the warehouse: a reader while dlt writes makes the load fail.
    pool=WAREHOUSE_POOL,
    description="Few known identifiers change customer in one run; a jump means a new link glued people together.",
)
def no_sudden_identity_jump(
    warehouse: WarehouseResource, identity_guardrails: IdentityGuardrails
) -> dg.AssetCheckResult:
    known, changed, merges = _query(
        warehouse,
        "SELECT count(previous_customer_id), count(*) FILTER (WHERE customer_id <> previous_customer_id), "
        "count(DISTINCT customer_id) FILTER (WHERE customer_id <> previous_customer_id) "
        f"FROM intermediate.int_identity__resolved WHERE {_PERSON_KINDS}",
    )[0]
    share = changed / known if known else 0.0
    limit = identity_guardrails.max_changed_share
    return dg.AssetCheckResult(
        passed=share <= limit,
        metadata={
            "known_identifiers": known,
            "changed_identifiers": changed,
            "customers_changed": merges,
            "changed_share": round(share, 5),
            "limit": limit,
        },
        description=None
        if share <= limit
        else f"{changed:,} of {known:,} known identifiers changed customer ({share:.1%}, limit {limit:.1%})",
    )


identity_checks = [customers_within_size_limit, no_sudden_identity_jump]
