"""The official `mailchimp_marketing` SDK against the Mailchimp sandbox: paging the audience,
upserting a member and round-tripping its tags, exactly as the push client would."""

from __future__ import annotations

import hashlib
import json

import mailchimp_marketing
import pytest
from mailchimp_marketing.api_client import ApiClientError

pytestmark = pytest.mark.sdk


def sdk_client(sandbox) -> tuple[mailchimp_marketing.Client, str]:
    meta = json.loads((sandbox.world / "world.json").read_text())
    client = mailchimp_marketing.Client()
    client.set_config({"api_key": meta["credentials"]["mailchimp"]["api_key"], "server": "us21"})
    # The SDK builds URLs from `host` (https://server.api.mailchimp.com/3.0, with "server"
    # replaced by the data center); pointing it at the sandbox is all it takes.
    client.api_client.host = f"{sandbox.vendor_url('mailchimp')}/3.0"
    return client, meta["ids"]["mailchimp_list_id"]


def test_sdk_pages_members_and_round_trips_tags(private_sandbox) -> None:
    client, list_id = sdk_client(private_sandbox)
    assert client.ping.get() == {"health_status": "Everything's Chimpy!"}

    seen, offset = [], 0
    while True:
        page = client.lists.get_list_members_info(list_id, count=25, offset=offset)
        seen += [m["id"] for m in page["members"]]
        offset += 25
        if offset >= page["total_items"]:
            break
    assert len(seen) == len(set(seen)) == page["total_items"] > 25

    email = "grace.hopper@navy-mail.org"
    subscriber_hash = hashlib.md5(email.encode()).hexdigest()
    member = client.lists.set_list_member(
        list_id,
        subscriber_hash,
        {"email_address": email, "status_if_new": "subscribed", "merge_fields": {"FNAME": "Grace"}},
    )
    assert member["id"] == subscriber_hash and member["status"] == "subscribed"

    response = client.lists.update_list_member_tags(
        list_id, subscriber_hash, {"tags": [{"name": "abandoned_checkout_24h", "status": "active"}]}
    )
    assert response.status_code == 204
    tags = client.lists.get_list_member_tags(list_id, subscriber_hash)
    assert [t["name"] for t in tags["tags"]] == ["abandoned_checkout_24h"]
    assert client.lists.get_list_member(list_id, subscriber_hash)["tags_count"] == 1

    after = client.lists.get_list_members_info(list_id, count=1)["total_items"]
    assert after == page["total_items"] + 1

    with pytest.raises(ApiClientError) as err:
        client.lists.get_list_member(list_id, "0" * 32)
    assert err.value.status_code == 404 and json.loads(err.value.text)["title"] == "Resource Not Found"
