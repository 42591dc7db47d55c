"""The code location loads and holds exactly the definitions we mean it to."""

from __future__ import annotations

import dagster as dg

from orchestration.definitions import defs
from orchestration.resources import WAREHOUSE_POOL

EXPECTED_ASSETS = {
    "raw_mixpanel/events",
    "raw_hubspot/contacts",
    "raw_hubspot/companies",
    "raw_hubspot/deals",
    "raw_shopify/customers",
    "raw_shopify/orders",
    "raw_shopify/products",
    "raw_shopify/abandoned_checkouts",
    "raw_shopify/quarantine_repairs",
    "raw_klaviyo/profiles",
    "raw_klaviyo/lists",
    "raw_klaviyo/list_memberships",
    "raw_klaviyo/metrics",
    "raw_klaviyo/campaigns",
    "raw_klaviyo/events",
    "raw_mailchimp/lists",
    "raw_mailchimp/members",
    "raw_mailchimp/campaigns",
    "raw_mailchimp/email_activity",
    "raw_instagram/media",
    "raw_instagram/comments",
    "raw_instagram/mentions",
    "seeds/email_domain_corrections",
    "staging/stg_mixpanel__events",
    "staging/stg_hubspot__contacts",
    "staging/stg_hubspot__companies",
    "staging/stg_hubspot__deals",
    "staging/stg_hubspot__deal_associations",
    "staging/stg_shopify__customers",
    "staging/stg_shopify__customer_addresses",
    "staging/stg_shopify__orders",
    "staging/stg_shopify__order_line_items",
    "staging/stg_shopify__order_shipping_lines",
    "staging/stg_shopify__products",
    "staging/stg_shopify__product_variants",
    "staging/stg_shopify__product_options",
    "staging/stg_shopify__checkouts",
    "staging/stg_shopify__checkout_line_items",
    "staging/stg_shopify__checkout_shipping_lines",
    "staging/stg_klaviyo__profiles",
    "staging/stg_klaviyo__lists",
    "staging/stg_klaviyo__list_memberships",
    "staging/stg_klaviyo__metrics",
    "staging/stg_klaviyo__campaigns",
    "staging/stg_klaviyo__events",
    "staging/stg_mailchimp__lists",
    "staging/stg_mailchimp__members",
    "staging/stg_mailchimp__member_tags",
    "staging/stg_mailchimp__campaigns",
    "staging/stg_mailchimp__email_activities",
    "staging/stg_instagram__media",
    "staging/stg_instagram__comments",
    "staging/stg_instagram__mentions",
    "privacy/erased_identifiers",
    "staging/stg_privacy__erased_identifiers",
    "seeds/identity_blocklist",
    "seeds/sentiment_lexicon",
    "intermediate/int_identity__occurrences",
    "intermediate/int_identity__mixpanel_pairs",
    "intermediate/int_identity__nodes",
    "intermediate/int_identity__edges",
    "intermediate/int_identity__resolved",
    "intermediate/int_identity__records",
    "intermediate/int_customers__profile_traits",
    "intermediate/int_customers__orders",
    "intermediate/int_customers__email_consent",
    "intermediate/int_customers__email_engagement",
    "intermediate/int_customers__social",
    "marts/crm_lifecycle_stages",
    "marts/customer_identifiers",
    "marts/identity_changes",
    "marts/dim_customers",
    "intermediate/int_products__catalog",
    "intermediate/int_products__customer_interactions",
    "intermediate/int_products__pairs",
    "intermediate/int_products__popularity",
    "intermediate/int_traits__orders",
    "intermediate/int_traits__order_history",
    "intermediate/int_traits__rfm",
    "intermediate/int_traits__lifecycle",
    "intermediate/int_traits__category_affinity",
    "intermediate/int_traits__checkout_price_signals",
    "intermediate/int_traits__price_sensitivity",
    "intermediate/int_traits__open_carts",
    "marts/customer_recommendations",
    "marts/product_pairs",
    "marts/customer_traits",
    "marts/customer_offers",
    "marts/seg_vip_customers",
    "marts/seg_at_risk_subscribers",
    "marts/seg_lapsed_buyers",
    "marts/seg_discount_seekers",
    "marts/seg_engaged_never_bought",
    "marts/campaign_interactions",
    "marts/campaign_attributed_orders",
    "marts/campaign_audiences",
    "marts/campaign_performance",
    "marts/campaign_audience_performance",
    "intermediate/int_device_sessions",
    "intermediate/int_sessions",
    "intermediate/int_product_views_aggregated",
    "intermediate/int_checkout_events_pivoted",
    "intermediate/int_checkout_line_items_unioned",
    "marts/fct_checkouts",
    "marts/fct_checkout_funnel_steps",
    "marts/fct_checkout_exit_causes",
    "marts/abandoned_checkouts",
    "marts/activation_holdout_results",
    "serving/analysts_copy",
    "serving/run_report",
    # Pushes: per destination, carried unsubscribes, then one asset per audience.
    *(
        f"activation/{destination}/{audience}"
        for destination in ("klaviyo", "mailchimp")
        for audience in (
            "unsubscribes",
            "abandoned_checkouts",
            "seg_vip_customers",
            "seg_at_risk_subscribers",
            "seg_lapsed_buyers",
            "seg_discount_seekers",
            "seg_engaged_never_bought",
        )
    ),
}


def test_asset_keys_are_exactly_the_expected_ones():
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == EXPECTED_ASSETS


def test_lineage_runs_from_load_to_mart():
    graph = defs.resolve_asset_graph()
    staging = graph.get(dg.AssetKey(["staging", "stg_hubspot__contacts"]))
    assert dg.AssetKey(["raw_hubspot", "contacts"]) in staging.parent_keys
    mart = graph.get(dg.AssetKey(["marts", "crm_lifecycle_stages"]))
    assert staging.key in mart.parent_keys


def test_a_dlt_child_table_is_its_parent_resources_asset():
    graph = defs.resolve_asset_graph()
    line_items = graph.get(dg.AssetKey(["staging", "stg_shopify__order_line_items"]))
    assert line_items.parent_keys == {dg.AssetKey(["raw_shopify", "orders"])}
    tags = graph.get(dg.AssetKey(["staging", "stg_mailchimp__member_tags"]))
    assert tags.parent_keys == {dg.AssetKey(["raw_mailchimp", "members"])}


def test_groups_follow_the_layers():
    graph = defs.resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups["raw_hubspot/contacts"] == "ingestion"
    assert groups["staging/stg_hubspot__contacts"] == "staging"
    assert groups["marts/crm_lifecycle_stages"] == "marts"


def test_every_warehouse_writer_is_in_the_single_writer_pool():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).pools == {WAREHOUSE_POOL}, key


def test_every_check_that_reads_the_warehouse_waits_for_its_writer():
    # A reader while dlt writes makes the load fail; a run started from a shell skips the run
    # queue, so the pool is what keeps a check from opening the file mid-load.
    repo = defs.get_repository_def()
    definitions = set(repo.assets_defs_by_key.values()) | set(repo.asset_checks_defs_by_key.values())
    pools = {check: d.node_def.pool for d in definitions for check in d.check_keys}
    assert len(pools) > 100
    assert {k.name for k, pool in pools.items() if pool != WAREHOUSE_POOL} == set()


def test_over_merge_checks_guard_the_identity_map_and_block():
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name): graph.get_check_spec(k) for k in graph.asset_check_keys}
    for name in ("customers_within_size_limit", "no_sudden_identity_jump"):
        spec = checks[("marts/customer_identifiers", name)]
        assert spec.blocking, name


def test_pushes_wait_for_their_audience_the_identity_checks_and_the_erasures():
    graph = defs.resolve_asset_graph()
    push = graph.get(dg.AssetKey(["activation", "klaviyo", "abandoned_checkouts"]))
    assert push.group_name == "activation"
    assert {
        dg.AssetKey(["marts", "abandoned_checkouts"]),
        dg.AssetKey(["marts", "customer_identifiers"]),
        dg.AssetKey(["privacy", "erased_identifiers"]),
        dg.AssetKey(["activation", "klaviyo", "unsubscribes"]),
    } <= push.parent_keys
    # The identity checks block: a failed one stops everything downstream of the identity map.
    assert (
        dg.AssetKey(["marts", "customer_identifiers"])
        in graph.get(dg.AssetKey(["activation", "mailchimp", "unsubscribes"])).parent_keys
    )


def test_nightly_schedule_runs_the_nightly_job():
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.job_name == "nightly"
    assert schedule.cron_schedule == "0 3 * * *"
    job = defs.resolve_job_def("nightly")
    assert job.name == "nightly"


def test_building_the_source_assets_opens_no_warehouse():
    """Loading the code location (the UI, the daemon and every run do) must never open a
    DuckDB file: two processes loading it at once would collide on the file's lock."""
    from orchestration.defs.ingestion import assets

    spec_warehouse = assets._SPEC_DIR / "unused.duckdb"
    spec_warehouse.unlink(missing_ok=True)
    for source in assets.SOURCES:
        assets._specs(source)
    assert not spec_warehouse.exists()
