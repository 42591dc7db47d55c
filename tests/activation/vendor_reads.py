"""Read back what the email platforms hold, through their own APIs (as a marketer's tool would)."""

from __future__ import annotations

import requests

KLAVIYO_HEADERS = {"revision": "2025-10-15", "accept": "application/vnd.api+json"}


def klaviyo_list_members(base_url: str, api_key: str, list_name: str) -> dict[str, dict]:
    """email (lower case) -> profile properties, for every member of the named list."""
    headers = {**KLAVIYO_HEADERS, "Authorization": f"Klaviyo-API-Key {api_key}"}
    lists = requests.get(
        f"{base_url}/api/lists", params={"filter": f'equals(name,"{list_name}")'}, headers=headers, timeout=30
    ).json()["data"]
    if not lists:
        return {}
    url: str | None = f"{base_url}/api/lists/{lists[0]['id']}/profiles?page[size]=100"
    members: dict[str, dict] = {}
    while url:
        page = requests.get(url, headers=headers, timeout=30).json()
        for profile in page["data"]:
            members[profile["attributes"]["email"].lower()] = profile["attributes"].get("properties") or {}
        url = page["links"].get("next")
    return members


def mailchimp_tagged(base_url: str, api_key: str, list_id: str, tag: str) -> dict[str, dict]:
    """email (lower case) -> merge fields, for every member carrying the tag."""
    auth = ("tessera", api_key)
    root = f"{base_url.rstrip('/')}/3.0"
    segments = requests.get(
        f"{root}/lists/{list_id}/segments", params={"type": "static", "count": 1000}, auth=auth, timeout=30
    ).json()["segments"]
    matching = [s for s in segments if s["name"] == tag]
    if not matching:
        return {}
    members: dict[str, dict] = {}
    offset = 0
    while True:
        page = requests.get(
            f"{root}/lists/{list_id}/segments/{matching[0]['id']}/members",
            params={"count": 1000, "offset": offset},
            auth=auth,
            timeout=30,
        ).json()
        for member in page["members"]:
            members[member["email_address"].lower()] = member.get("merge_fields") or {}
        offset += len(page["members"])
        if not page["members"] or offset >= page["total_items"]:
            return members


def write_counts(sandbox_url: str) -> dict[str, dict[str, int]]:
    return requests.get(f"{sandbox_url}/_sandbox/counters", timeout=30).json()["writes"]
