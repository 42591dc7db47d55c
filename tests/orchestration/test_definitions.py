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
    "staging/stg_hubspot__contacts",
    "marts/crm_lifecycle_stages",
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


def test_nightly_schedule_runs_the_nightly_job():
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.job_name == "nightly"
    assert schedule.cron_schedule == "0 3 * * *"
    job = defs.resolve_job_def("nightly")
    assert job.name == "nightly"
