"""The Mailchimp sandbox's merge-field endpoints and its per-record rejection fault on batch
writes, over HTTP."""

from __future__ import annotations

import hashlib
import json

import requests

REJECTED = "The contact could not be processed at this time. Please try again later."


def meta(sandbox) -> dict:
    return json.loads((sandbox.world / "world.json").read_text())


def call(sandbox, method: str, path: str, **kwargs) -> requests.Response:
    m = meta(sandbox)
    url = f"{sandbox.vendor_url('mailchimp')}/3.0/lists/{m['ids']['mailchimp_list_id']}{path}"
    return requests.request(method, url, auth=("t", m["credentials"]["mailchimp"]["api_key"]), timeout=30, **kwargs)


def subscribed(sandbox, n: int) -> list[str]:
    body = call(sandbox, "GET", "/members", params={"status": "subscribed", "count": n}).json()
    return [m["email_address"] for m in body["members"]]


def test_merge_fields_defaults_create_and_refusals(private_sandbox) -> None:
    sandbox = private_sandbox
    listed = call(sandbox, "GET", "/merge-fields").json()
    assert [(f["merge_id"], f["tag"], f["type"]) for f in listed["merge_fields"]] == [
        (1, "FNAME", "text"),
        (2, "LNAME", "text"),
        (3, "ADDRESS", "address"),
        (4, "PHONE", "phone"),
    ]
    assert listed["total_items"] == 4
    created = call(sandbox, "POST", "/merge-fields", json={"name": "cart_value", "type": "number", "tag": "cart_val"})
    assert created.status_code == 200, created.text
    assert (created.json()["merge_id"], created.json()["tag"], created.json()["public"]) == (5, "CART_VAL", False)
    untagged = call(sandbox, "POST", "/merge-fields", json={"name": "Notes", "type": "text"}).json()
    assert untagged["tag"] == "MMERGE6"
    assert call(sandbox, "GET", "/merge-fields/5").json()["name"] == "cart_value"
    assert call(sandbox, "GET", "/merge-fields/99").status_code == 404
    assert [
        f["tag"] for f in call(sandbox, "GET", "/merge-fields", params={"type": "number"}).json()["merge_fields"]
    ] == ["CART_VAL"]
    for body in (
        {"name": "again", "type": "text", "tag": "CART_VAL"},
        {"name": "address", "type": "text", "tag": "email"},
        {"name": "too long", "type": "text", "tag": "ELEVENCHARS"},
        {"name": "bad tag", "type": "text", "tag": "A-B"},
        {"name": "no type"},
        {"type": "text"},
    ):
        refused = call(sandbox, "POST", "/merge-fields", json=body)
        assert refused.status_code == 400 and refused.json()["title"] == "Invalid Resource", body
    assert call(sandbox, "GET", "/merge-fields").json()["total_items"] == 6
    received = sandbox.control("GET", "received", params={"vendor": "mailchimp"}).json()["items"]
    assert [i["kind"] for i in received] == ["merge_field_create", "merge_field_create"]
    assert sandbox.control("GET", "counters").json()["writes"]["mailchimp"] == {"merge_field_create": 2}
    # A member's merge field set through the API is served back.
    email = subscribed(sandbox, 1)[0]
    path = f"/members/{hashlib.md5(email.lower().encode()).hexdigest()}"
    assert call(sandbox, "PATCH", path, json={"merge_fields": {"CART_VAL": 12.5}}).json()["status"] == "subscribed"
    assert call(sandbox, "GET", path).json()["merge_fields"]["CART_VAL"] == 12.5
    # A number field refuses text, in Mailchimp's words, and the member keeps its value.
    refused = call(sandbox, "PATCH", path, json={"merge_fields": {"CART_VAL": "lots", "FNAME": "X"}})
    assert refused.status_code == 400
    assert (refused.json()["detail"], refused.json()["errors"]) == (
        "Your merge fields were invalid.",
        [{"field": "CART_VAL", "message": "Please enter a number"}],
    )
    served = call(sandbox, "GET", path).json()["merge_fields"]
    assert served["CART_VAL"] == 12.5 and served["FNAME"] != "X"
    assert call(sandbox, "PATCH", path, json={"merge_fields": {"CART_VAL": ""}}).status_code == 200


def test_rejection_fault_reports_members_of_batches_and_spares_the_rest(private_sandbox) -> None:
    sandbox = private_sandbox
    emails = subscribed(sandbox, 30)
    tag = call(sandbox, "POST", "/segments", json={"name": "faulted", "static_segment": []}).json()
    sandbox.set_faults(rate_reject=0.5, seed=1)
    result = call(sandbox, "POST", f"/segments/{tag['id']}", json={"members_to_add": emails}).json()
    rejected = [e for err in result["errors"] for e in err["email_addresses"]]
    assert 0 < len(rejected) < len(emails)
    assert result["errors"] == [{"email_addresses": rejected, "error": REJECTED}]
    assert result["total_added"] == len(emails) - len(rejected) and result["error_count"] == len(rejected)
    sandbox.control("DELETE", "faults")
    members = call(sandbox, "GET", f"/segments/{tag['id']}/members", params={"count": 100}).json()["members"]
    assert sorted(m["email_address"] for m in members) == sorted(set(emails) - set(rejected))

    sandbox.set_faults(rate_reject=0.5, seed=2)
    batch = {
        "members": [{"email_address": e, "merge_fields": {"FNAME": "Batch"}} for e in emails],
        "update_existing": True,
    }
    result = call(sandbox, "POST", "", json=batch).json()
    errors = {e["email_address"]: e for e in result["errors"]}
    assert errors and result["total_updated"] == len(emails) - len(errors)
    assert all(e["error"] == REJECTED and e["error_code"] == "ERROR_GENERIC" for e in errors.values())
    sandbox.control("DELETE", "faults")
    for email in emails[:10]:
        got = call(sandbox, "GET", f"/members/{hashlib.md5(email.lower().encode()).hexdigest()}").json()
        assert (got["merge_fields"]["FNAME"] == "Batch") is (email not in errors)
        assert got["status"] == "subscribed"
    assert sandbox.control("GET", "counters").json()["faults"]["mailchimp"]["reject"] == len(rejected) + len(errors)
