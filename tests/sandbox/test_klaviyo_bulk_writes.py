"""Bulk Create Events, Bulk Suppress Profiles and Request Profile Deletion in the sandbox,
sent by Klaviyo's official SDK (its models build the bodies and parse the answers), and the
per-record rejection fault on bulk import jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from klaviyo_api import KlaviyoAPI

pytestmark = pytest.mark.sdk

REVISION = "2025-10-15"


def _key(sandbox) -> str:
    return json.loads((Path(sandbox.world) / "world.json").read_text())["credentials"]["klaviyo"]["api_key"]


def _sdk(sandbox) -> KlaviyoAPI:
    return KlaviyoAPI(_key(sandbox), max_delay=2, max_retries=2, test_host=sandbox.vendor_url("klaviyo"))


def _api(sandbox, method: str, path: str, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Klaviyo-API-Key {_key(sandbox)}", "revision": REVISION}
    return requests.request(method, f"{sandbox.vendor_url('klaviyo')}{path}", headers=headers, timeout=30, **kwargs)


def _profile(sandbox, email: str, **params) -> dict | None:
    found = _api(sandbox, "GET", "/api/profiles", params={"filter": f'equals(email,"{email}")', **params}).json()
    return found["data"][0] if found["data"] else None


def _events_body(entries: list[tuple[str, str]]) -> dict:
    return {
        "data": {
            "type": "event-bulk-create-job",
            "attributes": {
                "events-bulk-create": {
                    "data": [
                        {
                            "type": "event-bulk-create",
                            "attributes": {
                                "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
                                "events": {
                                    "data": [
                                        {
                                            "type": "event",
                                            "attributes": {
                                                "properties": {"cart_value": 12.5},
                                                "metric": {"data": {"type": "metric", "attributes": {"name": "Bulk"}}},
                                                "unique_id": unique_id,
                                            },
                                        }
                                    ]
                                },
                            },
                        }
                        for email, unique_id in entries
                    ]
                }
            },
        }
    }


def _bulk_metric_events(sandbox) -> list[dict]:
    metrics = _api(sandbox, "GET", "/api/metrics").json()["data"]
    (metric,) = [m for m in metrics if m["attributes"]["name"] == "Bulk"]
    params = {"filter": f'equals(metric_id,"{metric["id"]}")', "page[size]": "1000"}
    return _api(sandbox, "GET", "/api/events", params=params).json()["data"]


def test_bulk_create_events_creates_profiles_and_deduplicates_on_unique_id(private_sandbox) -> None:
    klaviyo = _sdk(private_sandbox)
    body = _events_body([("bulk.a@example.com", "u-1"), ("bulk.b@example.com", "u-2"), ("bulk.a@example.com", "u-1")])

    klaviyo.Events.bulk_create_events(body)
    klaviyo.Events.bulk_create_events(body)  # a resend

    events = _bulk_metric_events(private_sandbox)
    assert len(events) == 2
    assert {e["attributes"]["event_properties"]["cart_value"] for e in events} == {12.5}
    assert _profile(private_sandbox, "bulk.b@example.com") is not None
    counters = requests.get(f"{private_sandbox.url}/_sandbox/counters", timeout=30).json()
    assert counters["writes"]["klaviyo"]["event_bulk_create_job"] == 2


def test_bulk_create_events_refuses_a_bad_entry_whole_and_names_it(private_sandbox) -> None:
    body = _events_body([("ok.one@example.com", "x-1"), ("not-an-email", "x-2")])
    resp = _api(private_sandbox, "POST", "/api/event-bulk-create-jobs", json=body)
    assert resp.status_code == 400
    error = resp.json()["errors"][0]
    assert error["source"]["pointer"] == (
        "/data/attributes/events-bulk-create/data/1/attributes/profile/data/attributes/email"
    )
    assert _profile(private_sandbox, "ok.one@example.com") is None  # nothing of it was applied

    too_many = _events_body([(f"n{i}@example.com", f"n-{i}") for i in range(1001)])
    assert _api(private_sandbox, "POST", "/api/event-bulk-create-jobs", json=too_many).status_code == 400


def test_bulk_suppress_marks_profiles_and_leaves_consent(private_sandbox) -> None:
    klaviyo = _sdk(private_sandbox)
    subscribed = _api(
        private_sandbox,
        "GET",
        "/api/profiles",
        params={"additional-fields[profile]": "subscriptions", "page[size]": "100"},
    ).json()["data"]
    target = next(
        p for p in subscribed if p["attributes"]["subscriptions"]["email"]["marketing"]["can_receive_email_marketing"]
    )
    email = target["attributes"]["email"]
    body = {
        "data": {
            "type": "profile-suppression-bulk-create-job",
            "attributes": {"profiles": {"data": [{"type": "profile", "attributes": {"email": email.upper()}}]}},
        }
    }

    job = klaviyo.Profiles.bulk_suppress_profiles(body)

    assert job.data.attributes.total_count == 1
    assert klaviyo.Profiles.get_bulk_suppress_profiles_job(job.data.id).data.attributes.status == "complete"
    marketing = _profile(private_sandbox, email, **{"additional-fields[profile]": "subscriptions"})["attributes"][
        "subscriptions"
    ]["email"]["marketing"]
    assert [s["reason"] for s in marketing["suppression"]] == ["USER_SUPPRESSED"]
    assert marketing["can_receive_email_marketing"] is False
    assert marketing["consent"] == "SUBSCRIBED"  # suppression is not an unsubscribe


def test_request_profile_deletion_removes_the_profile_everywhere(private_sandbox) -> None:
    klaviyo = _sdk(private_sandbox)
    lists = _api(private_sandbox, "GET", "/api/lists").json()["data"]
    list_id = lists[0]["id"]
    member = _api(private_sandbox, "GET", f"/api/lists/{list_id}/profiles", params={"page[size]": "1"}).json()["data"][
        0
    ]
    email = member["attributes"]["email"]
    body = {
        "data": {
            "type": "data-privacy-deletion-job",
            "attributes": {"profile": {"data": {"type": "profile", "attributes": {"email": email}}}},
        }
    }

    klaviyo.Data_Privacy.request_profile_deletion(body)

    assert _profile(private_sandbox, email) is None
    assert _api(private_sandbox, "GET", f"/api/profiles/{member['id']}").status_code == 404
    ids = _api(
        private_sandbox,
        "GET",
        f"/api/lists/{list_id}/relationships/profiles",
        params={"filter": f'equals(email,"{email}")'},
    ).json()["data"]
    assert ids == []
    events = _api(private_sandbox, "GET", "/api/events", params={"filter": f'equals(profile_id,"{member["id"]}")'})
    assert events.json()["data"] == []
    two = {
        "data": {
            "type": "data-privacy-deletion-job",
            "attributes": {
                "profile": {"data": {"type": "profile", "attributes": {"email": email, "phone_number": "+13239169023"}}}
            },
        }
    }
    assert _api(private_sandbox, "POST", "/api/data-privacy-deletion-jobs", json=two).status_code == 400


def test_reject_fault_turns_bulk_import_profiles_into_import_errors(private_sandbox) -> None:
    requests.put(f"{private_sandbox.url}/_sandbox/faults", json={"rate_reject": 0.5, "seed": 3}, timeout=30)
    profiles = [{"type": "profile", "attributes": {"email": f"rej.{i}@example.com"}} for i in range(40)]
    body = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": profiles}}}}
    job = _api(private_sandbox, "POST", "/api/profile-bulk-import-jobs", json=body).json()["data"]

    done = _api(private_sandbox, "GET", f"/api/profile-bulk-import-jobs/{job['id']}").json()["data"]["attributes"]
    errors = _api(
        private_sandbox, "GET", f"/api/profile-bulk-import-jobs/{job['id']}/import-errors", params={"page[size]": 100}
    ).json()["data"]

    assert 0 < done["failed_count"] < 40 and done["completed_count"] + done["failed_count"] == 40
    assert len(errors) == done["failed_count"]
    for error in errors:
        assert error["attributes"]["source"]["pointer"] == "/data/attributes/email"
        email = error["attributes"]["original_payload"]["email"]
        assert email.startswith("rej.") and _profile(private_sandbox, email) is None
    counters = requests.get(f"{private_sandbox.url}/_sandbox/counters", timeout=30).json()
    assert counters["faults"]["klaviyo"]["reject"] == len(errors)
