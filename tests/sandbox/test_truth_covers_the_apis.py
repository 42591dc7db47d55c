"""Every native identifier that any vendor API exposes is in `truth/identities.parquet`.

Reads each API the way a loader does (its own paging), collects the identifiers it exposes
and checks them against the truth, so a served field the truth forgot is caught.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow.parquet as pq
import requests

Identifier = tuple[str, str, str]  # (source, id_type, id_value)


def _creds(sandbox, vendor: str) -> dict:
    return json.loads((sandbox.world / "world.json").read_text())["credentials"][vendor]


def _meta(sandbox) -> dict:
    return json.loads((sandbox.world / "world.json").read_text())


def _pages(url: str, next_url, **kwargs) -> Iterator[requests.Response]:
    while url:
        resp = requests.get(url, timeout=60, **kwargs)
        resp.raise_for_status()
        yield resp
        url = next_url(resp)
        kwargs.pop("params", None)


def _mixpanel(sandbox) -> set[Identifier]:
    c, meta = _creds(sandbox, "mixpanel"), _meta(sandbox)
    resp = requests.get(
        f"{sandbox.url}/mixpanel/api/2.0/export",
        timeout=120,
        auth=(c["service_account_username"], c["service_account_secret"]),
        params={"project_id": c["project_id"], "from_date": meta["start"][:10], "to_date": meta["clock"][:10]},
    )
    resp.raise_for_status()
    out: set[Identifier] = set()
    for line in resp.text.splitlines():
        props = json.loads(line)["properties"]
        out.add(("mixpanel", "device_id", props["$device_id"]))
        if props.get("$user_id"):
            out.add(("mixpanel", "user_id", props["$user_id"]))
        distinct = props["distinct_id"].removeprefix("$device:")
        assert ("mixpanel", "device_id", distinct) in out or ("mixpanel", "user_id", distinct) in out
    return out


def _hubspot(sandbox) -> set[Identifier]:
    headers = {"Authorization": f"Bearer {_creds(sandbox, 'hubspot')['access_token']}"}
    out: set[Identifier] = set()
    for resp in _pages(
        f"{sandbox.url}/hubspot/crm/v3/objects/contacts",
        lambda r: r.json().get("paging", {}).get("next", {}).get("link"),
        headers=headers,
        params={"limit": 100, "properties": "email,phone"},
    ):
        for c in resp.json()["results"]:
            out.add(("hubspot", "contact_id", c["id"]))
            for field in ("email", "phone"):
                if c["properties"].get(field):
                    out.add(("hubspot", field, c["properties"][field]))
    return out


def _shopify(sandbox) -> set[Identifier]:
    c = _creds(sandbox, "shopify")
    base = f"{sandbox.url}/shopify/admin/api/{c['api_version']}"
    headers = {"X-Shopify-Access-Token": c["access_token"]}
    out: set[Identifier] = set()
    for resource, params in (("customers", {}), ("orders", {"status": "any"}), ("checkouts", {})):
        for resp in _pages(
            f"{base}/{resource}.json",
            lambda r: r.links.get("next", {}).get("url"),
            headers=headers,
            params={"limit": 250, **params},
        ):
            for rec in resp.json()[resource]:
                customer = rec if resource == "customers" else (rec.get("customer") or {})
                if customer.get("id"):
                    out.add(("shopify", "customer_id", str(customer["id"])))
                for field in ("email", "phone"):
                    if rec.get(field):
                        out.add(("shopify", field, rec[field]))
    return out


def _klaviyo(sandbox) -> set[Identifier]:
    c = _creds(sandbox, "klaviyo")
    headers = {
        "Authorization": f"Klaviyo-API-Key {c['api_key']}",
        "revision": c["revision"],
        "accept": "application/vnd.api+json",
    }
    out: set[Identifier] = set()
    for resp in _pages(
        f"{sandbox.url}/klaviyo/api/profiles",
        lambda r: r.json()["links"].get("next"),
        headers=headers,
        params={"page[size]": 100},
    ):
        for p in resp.json()["data"]:
            out.add(("klaviyo", "profile_id", p["id"]))
            if p["attributes"].get("email"):
                out.add(("klaviyo", "email", p["attributes"]["email"]))
            if p["attributes"].get("phone_number"):
                out.add(("klaviyo", "phone", p["attributes"]["phone_number"]))
    return out


def _mailchimp(sandbox) -> set[Identifier]:
    c = _creds(sandbox, "mailchimp")
    list_id = _meta(sandbox)["ids"]["mailchimp_list_id"]
    out: set[Identifier] = set()
    offset = 0
    while True:
        resp = requests.get(
            f"{sandbox.url}/mailchimp/3.0/lists/{list_id}/members",
            auth=("tessera", c["api_key"]),
            params={"count": 1000, "offset": offset},
            timeout=60,
        )
        resp.raise_for_status()
        members = resp.json()["members"]
        for m in members:
            out.add(("mailchimp", "email", m["email_address"]))
            out.add(("mailchimp", "unique_email_id", m["unique_email_id"]))
            if m["merge_fields"].get("PHONE"):
                out.add(("mailchimp", "phone", m["merge_fields"]["PHONE"]))
        offset += len(members)
        if not members or offset >= resp.json()["total_items"]:
            return out


def _instagram(sandbox) -> set[Identifier]:
    c = _creds(sandbox, "instagram")
    base = f"{sandbox.url}/instagram/v21.0"
    token = {"access_token": c["access_token"]}
    out: set[Identifier] = set()
    media_ids = []
    for resp in _pages(
        f"{base}/{c['ig_user_id']}/media",
        lambda r: r.json().get("paging", {}).get("next"),
        params={**token, "fields": "id", "limit": 100},
    ):
        media_ids += [m["id"] for m in resp.json()["data"]]
    for media_id in media_ids:
        for resp in _pages(
            f"{base}/{media_id}/comments",
            lambda r: r.json().get("paging", {}).get("next"),
            params={**token, "fields": "id,username,from", "limit": 100},
        ):
            for comment in resp.json()["data"]:
                out.add(("instagram", "username", comment["username"]))
                if comment.get("from", {}).get("id"):
                    out.add(("instagram", "user_id", comment["from"]["id"]))
    for resp in _pages(
        f"{base}/{c['ig_user_id']}/tags",
        lambda r: r.json().get("paging", {}).get("next"),
        params={**token, "fields": "id,username", "limit": 100},
    ):
        out |= {("instagram", "username", m["username"]) for m in resp.json()["data"]}
    return out


def test_every_identifier_the_apis_expose_is_in_the_truth(sandbox):
    truth = pq.read_table(sandbox.world / "truth" / "identities.parquet").to_pylist()
    known = {(r["source"], r["id_type"], r["id_value"]) for r in truth}
    for read in (_mixpanel, _hubspot, _shopify, _klaviyo, _mailchimp, _instagram):
        exposed = read(sandbox)
        assert exposed, f"{read.__name__} exposed nothing"
        missing = exposed - known
        assert not missing, (
            f"{read.__name__}: {len(missing)} exposed identifiers not in truth, e.g. {sorted(missing)[:5]}"
        )
