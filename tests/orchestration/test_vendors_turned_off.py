"""A shop that does not use every vendor: `SOURCES__<VENDOR>__ENABLED=false` (ingestion/raw_tables.py).

The demo's night with Instagram, HubSpot and Mailchimp turned off must succeed: those vendors
not read, their raw tables there and empty, their raw checks not run, the marts built from the
others and nothing pushed to Mailchimp. The next night, with them turned on again, loads them
into the tables that were created empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from tests.demo_runs import run_demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

WORLD = (11, 300, 20)  # seed, customers, days
TURNED_OFF = ("instagram", "hubspot", "mailchimp")
OFF = {f"SOURCES__{vendor.upper()}__ENABLED": "false" for vendor in TURNED_OFF}


@dataclass
class Night:
    log: str
    counts: dict[str, int]


def _counts(warehouse: Path) -> dict[str, int]:
    tables = (
        "raw_instagram.media",
        "raw_hubspot.contacts",
        "raw_mailchimp.members",
        "raw_shopify.orders",
        "staging.stg_hubspot__contacts",
        "marts.dim_customers",
        "marts.fct_checkouts",
    )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        counts = {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}
        for destination in ("klaviyo", "mailchimp"):
            counts[f"pushed to {destination}"] = con.execute(
                "SELECT count(*) FROM activation.sync_log WHERE destination = ?", [destination]
            ).fetchone()[0]
    return counts


@pytest.fixture(scope="module")
def nights(tmp_path_factory) -> tuple[Night, Night]:
    data = tmp_path_factory.mktemp("turned_off") / "data"
    first = run_demo(data, *WORLD, settings=OFF)
    first_night = Night(first.stdout + first.stderr, _counts(data / "warehouse.duckdb"))
    second = run_demo(data, *WORLD, "--advance-days", "1")
    return first_night, Night(second.stdout + second.stderr, _counts(data / "warehouse.duckdb"))


def test_a_turned_off_vendor_is_not_read_and_its_tables_are_empty(nights):
    first, _ = nights
    for vendor in TURNED_OFF:
        assert f"{vendor}: turned off (SOURCES__{vendor.upper()}__ENABLED=false), not read" in first.log
    assert first.counts["raw_instagram.media"] == 0
    assert first.counts["raw_hubspot.contacts"] == 0
    assert first.counts["raw_mailchimp.members"] == 0
    assert first.counts["staging.stg_hubspot__contacts"] == 0


def test_the_night_builds_the_marts_from_the_other_vendors(nights):
    first, _ = nights
    assert first.counts["raw_shopify.orders"] > 0
    assert first.counts["marts.dim_customers"] > 0
    assert first.counts["marts.fct_checkouts"] > 0
    # The raw checks of a turned-off vendor would fail on an empty table; they say why they did not run.
    assert "raw_hubspot.contacts: not checked, hubspot is turned off" in first.log
    assert "raw_mailchimp.members: not checked, mailchimp is turned off" in first.log


def test_nothing_is_pushed_to_a_platform_that_is_turned_off(nights):
    first, _ = nights
    assert "mailchimp: turned off (SOURCES__MAILCHIMP__ENABLED=false), nothing pushed there" in first.log
    assert first.counts["pushed to mailchimp"] == 0
    assert first.counts["pushed to klaviyo"] > 0


def test_turned_on_again_a_vendor_loads_into_the_tables_made_empty(nights):
    _, second = nights
    assert "turned off" not in second.log
    assert second.counts["raw_instagram.media"] > 0
    assert second.counts["raw_hubspot.contacts"] > 0
    assert second.counts["staging.stg_hubspot__contacts"] > 0
    assert second.counts["raw_mailchimp.members"] > 0
    assert second.counts["pushed to mailchimp"] > 0
