"""The load filter on its own: records of erased people are dropped, everyone else's kept."""

from __future__ import annotations

import json

import pyarrow as pa

from ingestion.common.erasure import ErasureFilter, carries_erased, checkout_key, identifier_hash, link_key


def test_the_filter_drops_records_and_arrow_rows_of_erased_people_only():
    tombstone = frozenset({identifier_hash("gone@example.com"), identifier_hash("dev-1")})
    step = ErasureFilter(tombstone, "orders")
    page = [
        {"id": 1, "customer": {"id": 9, "email": " Gone@Example.com"}},
        {"id": 2, "customer": {"id": 8, "email": "stays@example.com"}},
        {"resource": "orders", "reason": "missing primary key", "record": json.dumps({"email": "gone@example.com"})},
    ]
    assert step(page) == [page[1]]
    assert step(page[0]) is None
    events = pa.table({"device_id": ["dev-1", "dev-2", None], "event": ["a", "b", "c"]})
    assert step(events).column("event").to_pylist() == ["b", "c"]
    # An id that is not a person's (a deal, a product) never matches, whatever its value.
    assert not carries_erased({"id": "dev-1", "product_id": "dev-1"}, tombstone, "deals")


def test_links_to_an_erased_contact_are_dropped_and_the_record_kept():
    # Contact 101 was erased; so was someone whose Shopify customer id is 103.
    contact = identifier_hash("101")
    tombstone = frozenset({contact, link_key("contacts", contact), identifier_hash("103")})
    step = ErasureFilter(tombstone, "deals")
    deal = {
        "id": "7",
        "properties": {"amount": "120"},
        "associations": [
            {"to_object_type": "contacts", "to_id": "101", "association_type": "deal_to_contact"},
            # A company whose id happens to equal the erased contact's is not a person.
            {"to_object_type": "companies", "to_id": "101", "association_type": "deal_to_company"},
            {"to_object_type": "contacts", "to_id": "102", "association_type": "deal_to_contact"},
            # Contact 103 is someone else than the erased Shopify customer 103.
            {"to_object_type": "contacts", "to_id": "103", "association_type": "deal_to_contact"},
        ],
    }
    (kept,) = step([deal])
    assert kept["id"] == "7" and kept["properties"] == {"amount": "120"}
    assert [(a["to_object_type"], a["to_id"]) for a in kept["associations"]] == [
        ("companies", "101"),
        ("contacts", "102"),
        ("contacts", "103"),
    ]


def test_a_quarantined_record_keeps_its_place_without_its_links_to_an_erased_contact():
    # The vendor's own form, as quarantine keeps a record it could not load.
    contact = identifier_hash("101")
    tombstone = frozenset({contact, link_key("contacts", contact)})
    step = ErasureFilter(tombstone, "deals")
    raw = {
        "id": "7",
        "properties": {"amount": "not a number"},
        "associations": {
            "contacts": {
                "results": [{"id": "101", "type": "deal_to_contact"}, {"id": "102", "type": "deal_to_contact"}]
            },
            "companies": {"results": [{"id": "101", "type": "deal_to_company"}]},
        },
    }
    row = {"resource": "deals", "reason": "amount is not a number", "record": json.dumps(raw)}
    (kept,) = step([row])
    record = json.loads(kept["record"])
    assert record["id"] == "7" and record["properties"] == raw["properties"]
    assert record["associations"]["contacts"]["results"] == [{"id": "102", "type": "deal_to_contact"}]
    assert record["associations"]["companies"] == raw["associations"]["companies"]
    # A quarantined record linking to nobody erased is left exactly as it was written.
    other = {**row, "record": json.dumps({**raw, "associations": {"contacts": {"results": [{"id": "102"}]}}})}
    assert step([other]) == [other]


def test_events_of_an_erased_persons_checkout_are_dropped_on_any_device():
    # Her checkout tok-9 was erased with her (a token stands only by its kind, as read_tombstone
    # gives it); so was someone whose Shopify customer id is 3100.
    tombstone = frozenset({checkout_key("tok-9"), identifier_hash("3100")})
    step = ErasureFilter(tombstone, "events")
    # The family laptop is nobody's alone: her checkout's events on it go, the others' stay.
    page = [
        {"event": "Checkout Started", "properties": {"distinct_id": "dev-home", "checkout_id": " TOK-9"}},
        {"event": "Checkout Started", "properties": {"distinct_id": "dev-home", "checkout_id": "tok-8"}},
        {"event": "Product Viewed", "properties": {"distinct_id": "dev-home"}},
    ]
    assert step(page) == page[1:]
    # A person field holding the token's text is not her.
    assert step([{"properties": {"distinct_id": "tok-9"}}]) == [{"properties": {"distinct_id": "tok-9"}}]
    events = pa.table({"device_id": ["dev-home"] * 3, "checkout_id": ["tok-9", "tok-8", None]})
    assert step(events).column("checkout_id").to_pylist() == ["tok-8", None]
    # Shopify's numeric checkout id is no token: equal to an erased person's id, it stays.
    line_item = {"checkout_id": 3100, "sku": "s1"}
    assert ErasureFilter(tombstone, "abandoned_checkouts")([line_item]) == [line_item]
    assert step(pa.table({"checkout_id": [3100]})).num_rows == 1


def test_quarantined_records_naming_an_erased_person_by_id_or_device_are_dropped():
    # Ana's device and her storefront customer id (Mixpanel's `$user_id`), and her Klaviyo profile.
    tombstone = frozenset({identifier_hash("dev_ana"), identifier_hash("101"), identifier_hash("01KANA")})
    events = ErasureFilter(tombstone, "events")

    def quarantined(record):
        return {"resource": "events", "reason": "bad time", "record": record}

    anonymous = {"event": "view", "properties": {"distinct_id": "$device:dev_ana", "time": "x"}}
    login = {"event": "login", "properties": {"$user_id": "101", "$device_id": "dev_home"}}
    klaviyo = {"type": "event", "relationships": {"profile": {"data": {"type": "profile", "id": "01KANA"}}}}
    cut_off = '{"event": "add_to_cart", "properties": {"$user_id": "101", "$device_id": "dev_a'
    someone_else = {"event": "view", "properties": {"distinct_id": "$device:dev_cal", "quantity": 101}}
    page = [quarantined(json.dumps(r)) for r in (anonymous, login, klaviyo, someone_else)] + [quarantined(cut_off)]
    assert events(page) == [page[3]]
    # The same rules for records that load: Klaviyo's JSON:API link names the profile.
    assert events([klaviyo, someone_else]) == [someone_else]


def test_a_cut_off_record_names_a_person_only_by_a_person_field_not_by_a_bare_id():
    # Customer 555 cut off mid-record: its address's id (101) is no person's, even when a
    # person with id 101 was erased; its email still names it.
    tombstone = frozenset({identifier_hash("101")})
    cut = '{"id": 555, "default_address": {"id": 101, "city": "Lyon'
    assert not carries_erased({"record": cut}, tombstone, "customers")
    assert carries_erased(
        {"record": cut + '", "email": "gone@example.com'}, frozenset({identifier_hash("gone@example.com")})
    )
