"""The official HubSpot Python SDK (`hubspot-api-client`) against the sandbox: its paging,
search and error handling must work unchanged when only the host differs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from urllib3.util.retry import Retry

hubspot = pytest.importorskip("hubspot")
from hubspot.crm.contacts import ApiException, Filter, FilterGroup, PublicObjectSearchRequest  # noqa: E402

pytestmark = pytest.mark.sdk

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(milliseconds=1)


@pytest.fixture()
def world_state(sandbox) -> tuple[datetime, dict[int, int]]:
    """The clock, and contact id -> last-modified epoch ms for contacts that exist at it."""
    now = datetime.fromisoformat(sandbox.control("GET", "clock").json()["clock"].replace("Z", "+00:00"))
    single = sandbox.world / "store" / "hubspot_contacts.parquet"
    path = single if single.is_file() else sandbox.world / "store" / "hubspot_contacts" / "*.parquet"
    rows = (
        duckdb.connect()
        .execute(f"SELECT contact_id, created_at, optout_at, updated_at FROM read_parquet('{path}')")
        .fetchall()
    )
    modified = {
        cid: ms(max(t for t in (created, optout, updated) if t is not None and t <= now))
        for cid, created, optout, updated in rows
        if created <= now
    }
    return now, modified


@pytest.fixture()
def client(sandbox):
    # Fresh rate-limit budgets, so this test does not inherit earlier tests' requests.
    overrides = sandbox.control("GET", "limits").json()["overrides"]
    sandbox.control("PUT", "limits", json=overrides)
    token = json.loads((sandbox.world / "world.json").read_text())["credentials"]["hubspot"]["access_token"]
    # Searches are limited to 5 per second: let urllib3 wait out a 429 (POST included).
    retry = Retry(total=8, status_forcelist=[429], allowed_methods=None, respect_retry_after_header=True)
    return hubspot.HubSpot(access_token=token, host=sandbox.vendor_url("hubspot"), retry=retry)


def test_get_all_and_get_page_walk_every_contact(client, world_state) -> None:
    _, modified = world_state
    contacts = client.crm.contacts.get_all(properties=["email", "lastmodifieddate"])
    ids = [int(c.id) for c in contacts]
    assert len(ids) == len(set(ids)) == len(modified)
    assert set(ids) == set(modified)
    for contact in contacts:
        assert ms(contact.updated_at) == modified[int(contact.id)]  # the SDK parsed the timestamp
        assert contact.properties["lastmodifieddate"].endswith("Z")

    basic = client.crm.contacts.basic_api
    assert basic.api_client.configuration.host.endswith("/hubspot")
    seen: list[int] = []
    after = None
    while True:
        page = basic.get_page(limit=50, after=after, properties=["email"], associations=["companies"])
        seen += [int(c.id) for c in page.results]
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
        assert page.paging.next.link.startswith(client.config["host"])
    assert seen == sorted(modified)


def test_search_by_last_modified(client, world_state) -> None:
    _, modified = world_state
    bound = sorted(modified.values())[len(modified) // 2]
    expected = {cid for cid, stamp in modified.items() if stamp >= bound}
    flt = Filter(property_name="lastmodifieddate", operator="GTE", value=str(bound))
    found: list[int] = []
    after = None
    while True:
        request = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[flt])],
            sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            properties=["email", "lastmodifieddate"],
            limit=20,
            after=after,
        )
        page = client.crm.contacts.search_api.do_search(public_object_search_request=request)
        assert page.total == len(expected)
        found += [int(c.id) for c in page.results]
        stamps = [ms(c.updated_at) for c in page.results]
        assert stamps == sorted(stamps) and stamps[0] >= bound
        if page.paging is None:
            break
        after = page.paging.next.after
    assert len(found) == len(set(found)) and set(found) == expected


def test_sdk_raises_hubspot_errors(sandbox, client) -> None:
    with pytest.raises(ApiException) as missing:
        client.crm.contacts.basic_api.get_by_id(contact_id="1")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["category"] == "OBJECT_NOT_FOUND"
    intruder = hubspot.HubSpot(access_token="wrong", host=sandbox.vendor_url("hubspot"))
    with pytest.raises(ApiException) as denied:
        intruder.crm.contacts.basic_api.get_page()
    assert denied.value.status == 401
    assert json.loads(denied.value.body)["category"] == "INVALID_AUTHENTICATION"


def test_associations_batch_read_through_the_sdk(client, world_state) -> None:
    from hubspot.crm.associations import BatchInputPublicObjectId

    contacts = client.crm.contacts.basic_api.get_page(limit=100, associations=["companies"]).results
    expected = {c.id: sorted(a.id for a in c.associations["companies"].results) for c in contacts if c.associations}
    answer = client.crm.associations.batch_api.read(
        from_object_type="contacts",
        to_object_type="companies",
        batch_input_public_object_id=BatchInputPublicObjectId(inputs=[{"id": c.id} for c in contacts]),
    )
    assert {r._from.id: sorted(t.id for t in r.to) for r in answer.results} == expected
    assert answer.num_errors == len(contacts) - len(expected)
