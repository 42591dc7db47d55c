"""Klaviyo's official Python SDK (`klaviyo-api`) against the sandbox: its typed models parse
every response, so a shape the sandbox gets wrong fails here."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import duckdb
import pytest
from klaviyo_api import KlaviyoAPI

pytestmark = pytest.mark.sdk


def client(sandbox) -> KlaviyoAPI:
    """The SDK pointed at the sandbox through its `test_host` setting (which becomes
    `configuration.host`; the SDK adds the `/api/...` paths and its own `revision`)."""
    world = json.loads((Path(sandbox.world) / "world.json").read_text())
    key = world["credentials"]["klaviyo"]["api_key"]
    return KlaviyoAPI(key, max_delay=2, max_retries=2, test_host=sandbox.vendor_url("klaviyo"))


def cursor_of(next_link: str | None) -> str | None:
    """The `page[cursor]` of a next link. The SDK strips it from `https://` links only, so with
    the sandbox's `http://` links the caller passes the cursor itself."""
    if not next_link:
        return None
    return parse_qs(urlparse(next_link).query)["page[cursor]"][0]


def test_sdk_pages_through_profiles(sandbox) -> None:
    klaviyo = client(sandbox)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = klaviyo.Profiles.get_profiles(
            page_size=100, page_cursor=cursor, additional_fields_profile=["subscriptions"]
        )
        seen += [p.id for p in page.data]
        assert all(p.attributes.subscriptions.email.marketing.consent for p in page.data)
        cursor = cursor_of(page.links.next)
        if cursor is None:
            break
    clock = json.loads((Path(sandbox.world) / "world.json").read_text())["clock"]
    store = Path(sandbox.world) / "store" / "klaviyo_profiles.parquet"
    expected = duckdb.sql(f"SELECT count(*) FROM '{store}' WHERE created_at <= '{clock}'").fetchall()[0][0]
    assert len(seen) == len(set(seen)) == expected

    events = klaviyo.Events.get_events(include=["metric", "profile"], page_size=10)
    assert len(events.data) == 10 and events.included
    assert events.data[0].attributes.datetime_ is not None
    metrics = klaviyo.Metrics.get_metrics()
    assert {m.attributes.integration["name"] for m in metrics.data} == {"Klaviyo"}
    lists = klaviyo.Lists.get_lists()
    assert lists.data[0].attributes.name == "Newsletter"


def test_sdk_pushes_an_audience(private_sandbox) -> None:
    klaviyo = client(private_sandbox)
    created = klaviyo.Lists.create_list({"data": {"type": "list", "attributes": {"name": "Abandoned checkout (24h)"}}})
    list_id = created.data.id

    profile = klaviyo.Profiles.create_or_update_profile(
        {
            "data": {
                "type": "profile",
                "attributes": {"email": "sdk.shopper@example.com", "properties": {"cart_value": 64.0}},
            }
        }
    )
    klaviyo.Lists.add_profiles_to_list(list_id, {"data": [{"type": "profile", "id": profile.data.id}]})
    members = klaviyo.Lists.get_profiles_for_list(list_id)
    assert [m.id for m in members.data] == [profile.data.id]
    assert members.data[0].attributes.properties == {"cart_value": 64.0}
    assert members.data[0].attributes.joined_group_at is not None

    job = klaviyo.Profiles.bulk_import_profiles(
        {
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": {
                    "profiles": {"data": [{"type": "profile", "attributes": {"email": "sdk.bulk@example.com"}}]}
                },
                "relationships": {"lists": {"data": [{"type": "list", "id": list_id}]}},
            }
        }
    )
    status = klaviyo.Profiles.get_bulk_import_profiles_job(job.data.id).data.attributes
    assert (status.status, status.completed_count) == ("complete", 1)

    klaviyo.Events.create_event(
        {
            "data": {
                "type": "event",
                "attributes": {
                    "properties": {"checkout_id": "sdk-1"},
                    "metric": {"data": {"type": "metric", "attributes": {"name": "Abandoned checkout (Tessera)"}}},
                    "profile": {"data": {"type": "profile", "id": profile.data.id, "attributes": {}}},
                },
            }
        }
    )
    ids = klaviyo.Lists.get_profile_ids_for_list(list_id)
    assert len(ids.data) == 2
    read_back = klaviyo.Profiles.get_profile(profile.data.id)
    assert read_back.data.attributes.email == "sdk.shopper@example.com"
    assert read_back.data.attributes.last_event_date is not None
