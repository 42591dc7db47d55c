"""The Mailchimp destination against a live sandbox: tags and merge fields for subscribed members
only, nobody created or re-subscribed, idempotent repeats, remove / suppress / erase, faults,
the simultaneous-connection limit and a rejected key.

What the destination did is checked from outside it: members read back over HTTP with plain
requests, and the sandbox's log of received writes and its counters.
"""

from __future__ import annotations

import hashlib
import json

import duckdb
import pytest
import requests

from activation.destinations.base import Audience, Member
from activation.destinations.mailchimp import MailchimpDestination
from activation.destinations.mailchimp.http import MailchimpApi, api_root
from activation.destinations.mailchimp.members import MemberDirectory
from activation.destinations.mailchimp.merge_fields import choose_tag
from ingestion.common.errors import CredentialRejected
from ingestion.common.http import RetryPolicy
from tests.conftest import running_sandbox

TAG = "abandoned_checkout_24h"
AUDIENCE = Audience(
    name="abandoned_checkouts",
    mailchimp_tag=TAG,
    properties=("cart_value", "line_items", "free_shipping_gap"),
)
#: Quick retries for tests (the sandbox's injected 429s still ask for at least 1 s).
FAST = RetryPolicy(max_attempts=10, backoff_base=0.05, backoff_max=1.0, timeout=30)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


def world(sandbox) -> dict:
    return json.loads((sandbox.world / "world.json").read_text())


def api_key(sandbox) -> str:
    return world(sandbox)["credentials"]["mailchimp"]["api_key"]


def list_id(sandbox) -> str:
    return world(sandbox)["ids"]["mailchimp_list_id"]


def destination(sandbox, **kwargs) -> MailchimpDestination:
    return MailchimpDestination(
        f"{sandbox.vendor_url('mailchimp')}/3.0", api_key(sandbox), list_id(sandbox), policy=FAST, **kwargs
    )


def get(sandbox, path: str, **params) -> requests.Response:
    return requests.get(
        f"{sandbox.vendor_url('mailchimp')}/3.0/lists/{list_id(sandbox)}{path}",
        auth=("test", api_key(sandbox)),
        params=params,
        timeout=30,
    )


def member(sandbox, email: str) -> dict | None:
    r = get(sandbox, f"/members/{md5(email)}")
    return None if r.status_code == 404 else r.json()


def emails_with_status(sandbox, status: str, n: int) -> list[str]:
    body = get(sandbox, "/members", status=status, count=1000, fields="members.email_address").json()
    found = [m["email_address"] for m in body["members"]]
    assert len(found) >= n, f"the test world has only {len(found)} {status} members"
    return found[:n]


def bounced(sandbox, emails: list[str]) -> list[str]:
    """Turn members cleaned, as a bounce does (the small test world has no cleaned member yet);
    done before the destination runs, through the sandbox's API."""
    for email in emails:
        r = requests.patch(
            f"{sandbox.vendor_url('mailchimp')}/3.0/lists/{list_id(sandbox)}/members/{md5(email)}",
            auth=("test", api_key(sandbox)),
            json={"status": "cleaned"},
            timeout=30,
        )
        assert r.json()["status"] == "cleaned", r.text
    return emails


def received(sandbox) -> list[dict]:
    return sandbox.control("GET", "received", params={"vendor": "mailchimp"}).json()["items"]


def counters(sandbox) -> dict:
    return sandbox.control("GET", "counters").json()


def cart(i: int) -> dict:
    return {
        "cart_value": 20.5 + i,
        "line_items": [{"sku": f"SKU-{i}", "quantity": 1}],
        "free_shipping_gap": 29.5 - i,
    }


def members_for(emails: list[str]) -> list[Member]:
    return [Member(customer_id=f"c{i}", email=e, properties=cart(i)) for i, e in enumerate(emails)]


def tagged(sandbox, email: str) -> bool:
    found = member(sandbox, email)
    return found is not None and TAG in [t["name"] for t in found["tags"]]


# --------------------------------------------------------------------------------------------
# pure rules
# --------------------------------------------------------------------------------------------


def test_merge_tags_are_upper_case_at_most_10_characters_and_never_take_another_propertys_field() -> None:
    # The list's fields as tag -> name, growing as an audience's properties take their tags.
    taken = {"FNAME": "First Name", "PHONE": "Phone Number"}
    tags = {}
    for name in ["cart_value", "free_shipping_gap", "free_shipping_gap_eur", "email", "line items", "Ümlaut", "phone"]:
        tags[name], exists = choose_tag(name, taken)
        assert not exists
        taken[tags[name]] = name
    assert tags == {
        "cart_value": "CART_VALUE",
        "free_shipping_gap": "FREE_SHIPP",
        "free_shipping_gap_eur": "FREE_SHIP2",
        "email": "EMAIL2",
        "line items": "LINE_ITEMS",
        "Ümlaut": "_MLAUT",
        "phone": "PHONE2",  # the shop's own PHONE field is not Tessera's to write
    }
    assert all(len(t) <= 10 for t in tags.values())
    # Next run, whatever the order: every property finds its own field again.
    for name in reversed(tags):
        assert choose_tag(name, taken) == (tags[name], True)


def test_api_root_comes_from_the_key_data_center_and_never_shows_the_key() -> None:
    assert api_root(None, "0123abcd-us21") == "https://us21.api.mailchimp.com/3.0"
    assert api_root("https://us5.api.mailchimp.com", "k-us21") == "https://us5.api.mailchimp.com/3.0"
    assert api_root("http://127.0.0.1:1/mailchimp/3.0/", "k") == "http://127.0.0.1:1/mailchimp/3.0"
    with pytest.raises(ValueError) as err:
        api_root(None, "secretkeywithoutdc")
    assert "secretkeywithoutdc" not in str(err.value)
    with pytest.raises(ValueError):
        MailchimpDestination(None, "k-us21", "list", max_connections=11)


def test_member_lookup_takes_the_cheaper_of_pages_and_single_reads(sandbox) -> None:
    """With pages of 20 the test audience takes several pages: a few addresses are read one by
    one, many by walking the pages; once the size is known a few addresses cost no listing."""
    total = get(sandbox, "/members", count=1).json()["total_items"]
    pages = -(-total // 20)
    assert pages >= 5
    everyone = [m["email_address"] for m in get(sandbox, "/members", count=1000).json()["members"]]
    api = MailchimpApi(f"{sandbox.vendor_url('mailchimp')}/3.0", api_key(sandbox), policy=FAST)
    directory = MemberDirectory(api, list_id(sandbox), page_size=20)
    # Two addresses beyond the first page, one unknown: first page, then one read each.
    few = [everyone[-1], everyone[-2], "nobody.here@gmail.com"]
    found = directory.lookup(few)
    assert set(found) == {md5(e) for e in few[:2]} and found[md5(few[0])].email == few[0]
    assert api.requests == 1 + 3
    # Many addresses: every page once.
    before = api.requests
    assert set(directory.lookup(everyone)) == {md5(e) for e in everyone}
    assert api.requests - before == pages
    # A few again: the size is known, so single reads only.
    before = api.requests
    assert set(directory.lookup(everyone[:2])) == {md5(e) for e in everyone[:2]}
    assert api.requests - before == 2
    assert directory.lookup([]) == {} and api.requests - before == 2
    api.close()


def test_a_page_weighs_as_much_as_the_single_reads_it_replaces(sandbox) -> None:
    """Pages are dear (a full one carries 1000 members): twice as many addresses as pages, with
    a page costing four single reads, are still read one by one after the first page."""
    total = get(sandbox, "/members", count=1).json()["total_items"]
    pages = -(-total // 20)
    everyone = [m["email_address"] for m in get(sandbox, "/members", count=1000).json()["members"]]
    wanted = everyone[-2 * pages :]  # none of them on the first page
    api = MailchimpApi(f"{sandbox.vendor_url('mailchimp')}/3.0", api_key(sandbox), policy=FAST)
    directory = MemberDirectory(api, list_id(sandbox), page_size=20, page_cost=4)
    assert set(directory.lookup(wanted)) == {md5(e) for e in wanted}
    assert api.requests == 1 + len(wanted), "the first page (for the audience's size), then one read each"
    # Counted as plain calls the same lookup walks the pages.
    before = api.requests
    assert set(MemberDirectory(api, list_id(sandbox), page_size=20, page_cost=1).lookup(wanted)) == {
        md5(e) for e in wanted
    }
    assert api.requests - before == pages
    api.close()


def test_listing_costs_twenty_single_reads_a_full_page_and_never_less_than_a_call_a_page() -> None:
    directory = MemberDirectory(None, "list")  # type: ignore[arg-type]
    assert directory._listing_cost(350_000) == 7000
    assert directory._listing_cost(200) == 4, "a short page carries fewer members"
    assert directory._listing_cost(10) == 1
    assert MemberDirectory(None, "list", page_size=20)._listing_cost(100) == 5  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# upsert: consent first
# --------------------------------------------------------------------------------------------


def test_upsert_tags_only_subscribed_members_and_repeats_change_nothing(private_sandbox) -> None:
    sandbox = private_sandbox
    subscribed = emails_with_status(sandbox, "subscribed", 6)
    subscribed, cleaned = subscribed[:4], bounced(sandbox, subscribed[4:])
    unsubscribed = emails_with_status(sandbox, "unsubscribed", 2)
    start = len(received(sandbox))
    strangers = ["nobody.here@gmail.com", "Another.Stranger@yahoo.com"]
    before = {e: member(sandbox, e) for e in unsubscribed + cleaned}
    # Mixed case and spaces as the warehouse may hold them: Mailchimp matches lower case.
    batch = members_for(
        [subscribed[0].upper(), f" {subscribed[1]} ", *subscribed[2:], *unsubscribed, *cleaned, *strangers]
    )

    with destination(sandbox) as dest:
        outcomes = dest.upsert(AUDIENCE, batch)
        assert [o.email for o in outcomes] == [m.email for m in batch]
        by_email = {o.email.strip().lower(): o for o in outcomes}
        assert {by_email[e.lower()].status for e in subscribed} == {"ok"}
        for emails, why in ((unsubscribed, "unsubscribed"), (cleaned, "cleaned"), (strangers, "not a member")):
            for e in emails:
                assert by_email[e.lower()].status == "skipped" and why in by_email[e.lower()].error

        # Subscribed members carry the tag and the cart as merge fields.
        fields = {f["tag"]: f["type"] for f in get(sandbox, "/merge-fields", count=100).json()["merge_fields"]}
        assert fields["CART_VALUE"] == "number" and fields["LINE_ITEMS"] == "text" and fields["FREE_SHIPP"] == "number"
        for i, e in enumerate(subscribed):
            got = member(sandbox, e)
            assert got["status"] == "subscribed" and TAG in [t["name"] for t in got["tags"]]
            assert got["merge_fields"]["CART_VALUE"] == 20.5 + i
            assert json.loads(got["merge_fields"]["LINE_ITEMS"]) == [{"quantity": 1, "sku": f"SKU-{i}"}]
        # Nobody else was created or changed.
        for e in strangers:
            assert member(sandbox, e) is None
        for e, old in before.items():
            now = member(sandbox, e)
            assert now["status"] == old["status"] and now["tags"] == old["tags"]
            assert now["merge_fields"] == old["merge_fields"] and now["last_changed"] == old["last_changed"]

        # The writes: merge fields created, one PATCH per subscribed member, the tag, one batch.
        log = received(sandbox)[start:]
        kinds = [i["kind"] for i in log]
        assert kinds.count("merge_field_create") == 3 and kinds.count("member_patch") == 4
        assert kinds.count("segment_create") == 1 and kinds.count("segment_members") == 1
        assert len(kinds) == 9
        assert {i["key"].split(":")[1] for i in log if i["kind"] == "member_patch"} == {md5(e) for e in subscribed}
        for item in log:
            payload = item["payload"]
            assert "status" not in payload and "status_if_new" not in payload
            if item["kind"] == "segment_members":
                assert sorted(x.lower() for x in payload["members_to_add"]) == sorted(e.lower() for e in subscribed)

        # The same push again: same outcomes, one read, no write.
        requests_before = dest.requests
        assert dest.upsert(AUDIENCE, batch) == outcomes
        assert dest.requests - requests_before == 1
        assert len(received(sandbox)) == start + 9

        # One changed property: one PATCH for that member only.
        changed = [Member("c0", subscribed[0], {**cart(0), "cart_value": 99.0}), *members_for(subscribed)[1:]]
        assert {o.status for o in dest.upsert(AUDIENCE, changed)} == {"ok"}
        new = received(sandbox)[start + 9 :]
        assert [i["kind"] for i in new] == ["member_patch"] and new[0]["key"].endswith(md5(subscribed[0]))
        assert member(sandbox, subscribed[0])["merge_fields"]["CART_VALUE"] == 99.0
    assert counters(sandbox)["rate_limited"].get("mailchimp", 0) == 0


def test_a_member_who_unsubscribed_since_keeps_their_status(private_sandbox) -> None:
    """Someone tagged yesterday who unsubscribed today is skipped and stays unsubscribed."""
    sandbox = private_sandbox
    email = emails_with_status(sandbox, "subscribed", 1)[0]
    with destination(sandbox) as dest:
        assert dest.upsert(AUDIENCE, members_for([email]))[0].status == "ok"
        assert dest.suppress([email])[0].status == "ok"
        outcome = dest.upsert(AUDIENCE, [Member("c0", email, {**cart(0), "cart_value": 1.0})])[0]
    assert outcome.status == "skipped" and "unsubscribed" in outcome.error
    got = member(sandbox, email)
    assert got["status"] == "unsubscribed" and got["merge_fields"]["CART_VALUE"] == 20.5


def test_two_audiences_on_one_list_never_write_each_others_merge_fields(private_sandbox) -> None:
    """Merge fields belong to the list: an audience whose property shares its first 10
    characters with another audience's gets a field of its own, on every run, in either order,
    so one push never overwrites the other's values in someone who is in both."""
    sandbox = private_sandbox
    email = emails_with_status(sandbox, "subscribed", 1)[0]
    engaged = Audience(
        name="seg_engaged_never_bought", mailchimp_tag="engaged_never_bought", properties=("recommended_product_id",)
    )
    abandoned = Audience(name="abandoned_checkouts", mailchimp_tag=TAG, properties=("recommended_products",))
    products = [{"product_id": "p1", "title": "Water bottle"}]
    for _ in range(2):  # the second run reads the list's fields afresh, as a new night does
        with destination(sandbox) as dest:
            assert dest.upsert(engaged, [Member("c0", email, {"recommended_product_id": "p9"})])[0].status == "ok"
            assert dest.upsert(abandoned, [Member("c0", email, {"recommended_products": products})])[0].status == "ok"
    fields = {f["tag"]: f["name"] for f in get(sandbox, "/merge-fields", count=100).json()["merge_fields"]}
    assert fields["RECOMMENDE"] == "recommended_product_id" and fields["RECOMMEND2"] == "recommended_products"
    values = member(sandbox, email)["merge_fields"]
    assert values["RECOMMENDE"] == "p9" and json.loads(values["RECOMMEND2"]) == products
    assert sum(1 for name in fields.values() if name.startswith("recommended_")) == 2


def test_a_value_mailchimp_refuses_rejects_that_member_only(private_sandbox) -> None:
    """CART_VALUE is a number field once created; text for it is refused by Mailchimp, the
    member comes back rejected in Mailchimp's words and is not tagged; the others go through."""
    sandbox = private_sandbox
    emails = emails_with_status(sandbox, "subscribed", 3)
    with destination(sandbox) as dest:
        assert {o.status for o in dest.upsert(AUDIENCE, members_for(emails[:1]))} == {"ok"}
        batch = [Member("c1", emails[1], {**cart(1), "cart_value": "lots"}), *members_for(emails[2:])]
        bad, good = dest.upsert(AUDIENCE, batch)
    assert bad.status == "rejected" and good.status == "ok"
    assert bad.error == "Invalid Resource: Your merge fields were invalid. (CART_VALUE: Please enter a number)"
    assert not tagged(sandbox, emails[1]) and tagged(sandbox, emails[2])
    assert member(sandbox, emails[1])["status"] == "subscribed"


# --------------------------------------------------------------------------------------------
# remove, suppress, erase
# --------------------------------------------------------------------------------------------


def test_remove_takes_the_tag_off_and_only_that(private_sandbox) -> None:
    sandbox = private_sandbox
    emails = emails_with_status(sandbox, "subscribed", 3)
    with destination(sandbox) as dest:
        dest.upsert(AUDIENCE, members_for(emails))
        start = len(received(sandbox))
        outcomes = dest.remove(AUDIENCE, members_for([*emails[:2], "nobody.here@gmail.com"]))
        assert [o.status for o in outcomes] == ["ok", "ok", "ok"]
        assert [tagged(sandbox, e) for e in emails] == [False, False, True]
        for e in emails[:2]:
            got = member(sandbox, e)
            assert got["status"] == "subscribed" and got["merge_fields"]["CART_VALUE"] >= 20.5
        new = received(sandbox)[start:]
        assert [i["kind"] for i in new] == ["segment_members"]
        assert sorted(new[0]["payload"]["members_to_remove"]) == sorted(emails[:2])
        # Removing again changes nothing.
        assert [o.status for o in dest.remove(AUDIENCE, members_for(emails[:2]))] == ["ok", "ok"]
        assert len(received(sandbox)) == start + 1
    # A tag that was never pushed: nothing to remove, nothing created.
    with destination(sandbox) as dest:
        other = Audience(name="seg_vip", mailchimp_tag="vip_never_pushed")
        assert [o.status for o in dest.remove(other, members_for(emails[:1]))] == ["ok"]
    assert len(received(sandbox)) == start + 1


def test_suppress_moves_only_subscribed_members_to_unsubscribed(private_sandbox) -> None:
    sandbox = private_sandbox
    subscribed = emails_with_status(sandbox, "subscribed", 3)
    subscribed, cleaned = subscribed[:2], bounced(sandbox, subscribed[2:])
    unsubscribed = emails_with_status(sandbox, "unsubscribed", 1)
    asked = [*subscribed, *cleaned, *unsubscribed, "nobody.here@gmail.com"]
    start = len(received(sandbox))
    with destination(sandbox) as dest:
        assert [o.status for o in dest.suppress(asked)] == ["ok"] * 5
    assert [member(sandbox, e)["status"] for e in subscribed] == ["unsubscribed", "unsubscribed"]
    assert member(sandbox, cleaned[0])["status"] == "cleaned"
    assert member(sandbox, "nobody.here@gmail.com") is None
    # One batch call for both, naming only the subscribed members.
    log = received(sandbox)[start:]
    assert [i["kind"] for i in log] == ["list_batch"]
    assert log[0]["payload"]["update_existing"] is True
    sent = log[0]["payload"]["members"]
    assert {m["status"] for m in sent} == {"unsubscribed"}
    assert sorted(m["email_address"] for m in sent) == sorted(e.strip().lower() for e in subscribed)


def test_erase_deletes_permanently_and_unknown_addresses_are_ok(private_sandbox) -> None:
    sandbox = private_sandbox
    email = emails_with_status(sandbox, "subscribed", 1)[0]
    with destination(sandbox) as dest:
        dest.upsert(AUDIENCE, members_for([email]))
        assert [o.status for o in dest.erase([email, "nobody.here@gmail.com"])] == ["ok", "ok"]
        assert member(sandbox, email) is None
        # Gone for good: a later push skips the address and cannot bring it back.
        assert dest.upsert(AUDIENCE, members_for([email]))[0].status == "skipped"
        assert [o.status for o in dest.erase([email])] == ["ok"]
    kinds = [i["kind"] for i in received(sandbox)]
    assert kinds.count("member_delete_permanent") == 1 and member(sandbox, email) is None


# --------------------------------------------------------------------------------------------
# faults and limits
# --------------------------------------------------------------------------------------------


def test_with_429_500_and_rejections_everyone_ends_tagged_after_retry_passes(private_sandbox) -> None:
    sandbox = private_sandbox
    emails = emails_with_status(sandbox, "subscribed", 40)
    sandbox.set_faults(rate_429=0.15, rate_500=0.1, rate_reject=0.3, retry_after_seconds=0, seed=3)
    batch = members_for(emails)
    rejected_seen = []
    with destination(sandbox) as dest:
        pending = batch
        for _ in range(10):
            outcomes = dest.upsert(AUDIENCE, pending)
            assert {o.status for o in outcomes} <= {"ok", "rejected"}
            rejected = [o for o in outcomes if o.status == "rejected"]
            rejected_seen += rejected
            pending = [m for m, o in zip(pending, outcomes, strict=True) if o.status == "rejected"]
            if not pending:
                break
        assert not pending
        assert dest.retries > 0
    assert rejected_seen, "rate_reject=0.3 over 40 members rejected nobody"
    assert {o.error for o in rejected_seen} == {
        "The contact could not be processed at this time. Please try again later."
    }
    faults = counters(sandbox)["faults"]["mailchimp"]
    assert faults.get("429", 0) > 0 and faults.get("500", 0) > 0 and faults.get("reject", 0) > 0
    sandbox.control("DELETE", "faults")
    assert all(tagged(sandbox, e) for e in emails)
    assert counters(sandbox)["rate_limited"].get("mailchimp", 0) == 0


def test_never_more_connections_than_allowed(private_sandbox) -> None:
    """With the sandbox's limit lowered to 3, a destination capped at 3 is never refused; one
    allowed 8 against the same limit is (so the counter does see violations)."""
    sandbox = private_sandbox
    emails = emails_with_status(sandbox, "subscribed", 60)
    sandbox.control("PUT", "limits", json={"mailchimp": {"connections": {"limit": 3}}})
    with destination(sandbox, max_connections=3) as dest:
        assert {o.status for o in dest.upsert(AUDIENCE, members_for(emails[:30]))} == {"ok"}
        assert dest.retries == 0
    assert counters(sandbox)["rate_limited"].get("mailchimp", 0) == 0
    with destination(sandbox, max_connections=8) as dest:
        assert {o.status for o in dest.upsert(AUDIENCE, members_for(emails[30:]))} == {"ok"}
        assert dest.retries > 0
    assert counters(sandbox)["rate_limited"]["mailchimp"] > 0
    assert all(tagged(sandbox, e) for e in emails)


def test_erase_deletes_the_address_from_every_audience_that_holds_it(fresh_world) -> None:
    """A shop with a second audience (a wholesale list, say): the loaders read both, and the
    person asked the shop to forget them, so the erasure reaches both, with or without the
    audience Tessera tags on configured."""
    store = fresh_world / "store"
    with duckdb.connect() as con:
        newsletter, email = con.execute(
            f"SELECT list_id, email_address FROM '{store}/mailchimp_members.parquet' "
            "WHERE unsubscribed_at IS NULL AND cleaned_at IS NULL ORDER BY web_id LIMIT 1"
        ).fetchone()
        for table, extra in (
            ("mailchimp_lists", "'wholesale01' AS list_id, web_id + 1 AS web_id"),
            ("mailchimp_members", "'wholesale01' AS list_id"),
        ):
            path = f"{store}/{table}.parquet"
            rows = f"SELECT * REPLACE ({extra}) FROM '{path}'"
            if table == "mailchimp_members":
                rows += f" WHERE email_address = '{email}'"
            con.execute(f"COPY (SELECT * FROM '{path}' UNION ALL BY NAME {rows}) TO '{path}.new' (FORMAT parquet)")
            (store / f"{table}.parquet.new").replace(path)
    with running_sandbox(fresh_world) as sandbox:

        def holds(list_id: str, address: str) -> bool:
            url = f"{sandbox.vendor_url('mailchimp')}/3.0/lists/{list_id}/members/{md5(address)}"
            return requests.get(url, auth=("test", api_key(sandbox)), timeout=30).status_code == 200

        assert holds(newsletter, email) and holds("wholesale01", email)
        with destination(sandbox) as dest:
            assert [o.status for o in dest.erase([email])] == ["ok"]
        assert not holds(newsletter, email) and not holds("wholesale01", email)

        # Only erasing: no audience to tag on is needed.
        other = emails_with_status(sandbox, "subscribed", 1)[0]
        eraser = MailchimpDestination(f"{sandbox.vendor_url('mailchimp')}/3.0", api_key(sandbox), None, policy=FAST)
        with eraser:
            assert [o.status for o in eraser.erase([other, "nobody.here@gmail.com"])] == ["ok", "ok"]
        assert not holds(newsletter, other)


def test_a_wrong_key_raises_the_credential_error_without_the_key(sandbox) -> None:
    wrong = "0badc0ffee0badc0ffee0badc0ffee00-us21"
    dest = MailchimpDestination(f"{sandbox.vendor_url('mailchimp')}/3.0", wrong, list_id(sandbox))
    for call in (
        lambda: dest.upsert(AUDIENCE, members_for(["someone@gmail.com"])),
        lambda: dest.suppress(["someone@gmail.com"]),
        lambda: dest.erase(["someone@gmail.com"]),
    ):
        with pytest.raises(CredentialRejected) as err:
            call()
        assert err.value.status == 401 and wrong not in str(err.value) and "API_KEY" in str(err.value)
    assert wrong not in repr(dest)
    dest.close()
