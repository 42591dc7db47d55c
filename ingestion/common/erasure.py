"""Erased people stay erased: every load drops records that carry a tombstoned identifier.

An erasure request (activation/privacy) deletes a person from the warehouse and writes their
identifiers to the tombstone `privacy.erased_identifiers`, hashed (sha256 of the normalized
value) so the tombstone itself keeps no personal data. The vendors keep serving that person's
records, so without this filter the next night's load would bring them back. `drop_erased()`
adds one step to every resource of a source that drops such records before dlt writes them
anywhere (load packages included): dict records and pages of them, and rows of Arrow tables.
A record that only links to an erased person (a HubSpot deal's association to their contact)
is kept without that link, and a record of an erased person's checkout (a storefront event
carrying its token) is dropped. Erasure requests already processed are not loaded again.

Which fields name a person is decided by the field's name, the same rule the erasure uses on
warehouse columns (dlt flattens `customer.id` to `customer__id`): comparing every value with
the tombstone would also drop, say, a deal whose id happens to equal an erased contact's id.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
from dlt.extract.items_transform import ItemTransform
from dlt.sources import DltSource

TOMBSTONE_SCHEMA = "privacy"
TOMBSTONE_TABLE = "erased_identifiers"

# Field names whose value is a person's identifier, whatever the vendor.
PERSON_FIELDS = frozenset(
    {
        "email",
        "email_address",
        "contact_email",
        "phone",
        "phone_number",
        "username",
        "distinct_id",
        "device_id",
        "user_id",
        "profile_id",
        "unique_email_id",
        "customer_id",
        "contact_id",
        "external_id",
        "id_value",
    }
)
# An `id` under one of these names is a person's id (`customer.id`, `from.id`).
PERSON_PARENTS = frozenset({"customer", "profile", "from", "contact", "user", "member"})
# Resources whose records are people: their own `id` is a person's id.
PERSON_RESOURCES = frozenset({"customers", "contacts", "profiles", "members"})
# A record's links to other records, as its child rows: HubSpot's associations (a deal's
# `{"to_object_type": "contacts", "to_id": "101"}`, table `deals__associations`). A link to a
# person is the person's, not the record's: an erased person's links are dropped at load and
# deleted at erasure, and the record (the shop's deal) stays. Links are matched by kind: the
# (source, id_type) pairs under which a linked person's id is known (the identity map's
# `contact_id`, the raw contacts table's `id`), so a Shopify customer id that happens to equal
# another person's contact id never removes that contact's link.
LINK_TYPE, LINK_ID = "to_object_type", "to_id"
PERSON_LINK_TYPES: dict[str, frozenset[tuple[str, str]]] = {
    "contacts": frozenset({("hubspot", "contact_id"), ("hubspot", "id")}),
}
# A checkout is its shopper's: Shopify's `checkout_token` on an order, Mixpanel's `checkout_id`
# on the storefront's checkout events, the models' `checkout_token`. An erased person's checkout
# goes with them even where no person field names them (a guest checkout on a shared laptop,
# which would otherwise be credited to whoever else uses it). Matched by kind, as links are:
# a checkout field only against checkout tokens (Shopify's numeric `checkout_id` is never
# compared with a person's ids), and a token never against a person field.
CHECKOUT_FIELDS = frozenset({"checkout_token", "checkout_id"})
CHECKOUT_TOKEN = ("shopify", "checkout_token")
CHECKOUT_KIND = "checkout"
# The same links in the vendor's own form, as a quarantined record keeps them:
# `{"associations": {"contacts": {"results": [{"id": "101", "type": "deal_to_contact"}]}}}`.
RAW_LINKS_KEY = "associations"
RAW_LINKS_MARK = f'"{RAW_LINKS_KEY}"'
# Processed erasure requests, one row each (written by activation/privacy).
ERASURE_LOG_TABLE = "erasure_log"
ERASURE_REQUESTS_RESOURCE = "erasure_requests"


def person_links(identifiers: Iterable[tuple[str, str, Any]]) -> Iterator[tuple[str, Any]]:
    """(link type, value) for each `(source, id_type, value)` identifier that a link of that
    type names (a HubSpot contact id is what a deal's `contacts` link holds)."""
    for source, id_type, value in identifiers:
        for link_type, kinds in PERSON_LINK_TYPES.items():
            if (source, id_type) in kinds:
                yield link_type, value


def link_key(link_type: str, id_hash: str) -> str:
    """How an id matched by its kind (a linked person's id, a checkout token) stands in the
    tombstone's set: kind, then the id's hash."""
    return f"{link_type}:{id_hash}"


def normalize_identifier(value: Any) -> str:
    """The form identifiers are compared and hashed in: text, trimmed, lowercased."""
    return str(value).strip().lower()


@lru_cache(maxsize=200_000)
def _hash_normalized(normalized: str) -> str:
    return hashlib.sha256(normalized.encode()).hexdigest()


def identifier_hash(value: Any) -> str:
    """sha256 of the normalized identifier: what the tombstone stores, never the value itself."""
    return _hash_normalized(normalize_identifier(value))


def is_person_field(path: tuple[str, ...], resource: str | None = None) -> bool:
    """Whether the field at `path` (keys from the record's root, or a flattened column name
    split on `__`) holds a person's identifier."""
    if not path:
        return False
    # Mixpanel's reserved properties carry a `$` (`$device_id`, `$user_id`).
    names = [name.lower().lstrip("$") for name in path]
    last = names[-1]
    if last in PERSON_FIELDS:
        return True
    if last == "id":
        if len(names) >= 2 and names[-2] in PERSON_PARENTS:
            return True
        # JSON:API's form of a link, as Klaviyo serves it: `relationships.profile.data.id`.
        if len(names) >= 3 and names[-2] == "data" and names[-3] in PERSON_PARENTS:
            return True
        return len(names) == 1 and resource in PERSON_RESOURCES
    return False


def is_person_column(column: str, table: str | None = None) -> bool:
    """`is_person_field` for a warehouse column (nested keys flattened with `__`)."""
    return is_person_field(tuple(column.split("__")), table)


def checkout_key(token: Any) -> str:
    """A checkout token as the tombstone's set holds it (`read_tombstone`)."""
    return link_key(CHECKOUT_KIND, identifier_hash(token))


def is_checkout_column(column: str) -> bool:
    """Whether a field or warehouse column may hold a checkout token (`CHECKOUT_FIELDS`)."""
    return column.split("__")[-1].lower() in CHECKOUT_FIELDS


def _privacy_rows(warehouse: Path, table: str, columns: str) -> list[tuple[Any, ...]]:
    """`columns` of every row of `privacy.<table>`; none before the warehouse or table exists."""
    if not Path(warehouse).exists():
        return []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [TOMBSTONE_SCHEMA, table],
        ).fetchall()[0][0]
        return con.execute(f"SELECT {columns} FROM {TOMBSTONE_SCHEMA}.{table}").fetchall() if exists else []


def read_tombstone(warehouse: Path) -> frozenset[str]:
    """Every tombstoned identifier hash in the warehouse (empty when nobody was ever erased),
    and beside each, `<link type>:<hash>` for the ids a link of that type names and
    `checkout:<hash>` for checkout tokens."""
    rows = _privacy_rows(warehouse, TOMBSTONE_TABLE, "DISTINCT id_hash, source, id_type")
    links = {link_key(link_type, h) for link_type, h in person_links((s, t, h) for h, s, t in rows)}
    checkouts = {link_key(CHECKOUT_KIND, h) for h, s, t in rows if (s, t) == CHECKOUT_TOKEN}
    return frozenset(h for h, s, t in rows if (s, t) != CHECKOUT_TOKEN) | links | checkouts


def read_processed_requests(warehouse: Path) -> frozenset[str]:
    """The ids of the erasure requests already processed in the warehouse."""
    return frozenset(r for (r,) in _privacy_rows(warehouse, ERASURE_LOG_TABLE, "request_id"))


# A `"key": value` pair in text that is not JSON (a quarantined line cut off mid-record, the
# last value perhaps without its closing quote).
_TEXT_PAIR = re.compile(r'"([^"\\]{1,64})"\s*:\s*(?:"((?:[^"\\]|\\.){1,256})(?:"|$)|(-?\d{1,30}))')
# Mixpanel's distinct id of an anonymous visitor: its device id, prefixed.
_DEVICE_PREFIX = "$device:"


def _field_keys(path: tuple[str, ...], value: Any, resource: str | None) -> Iterator[str]:
    """The tombstone keys of one field's value: its hash if it names a person (and the device's,
    for Mixpanel's `$device:<id>`), `checkout:<hash>` if it names a checkout."""
    if is_person_field(path, resource):
        yield identifier_hash(value)
        if isinstance(value, str) and value.lower().startswith(_DEVICE_PREFIX):
            yield identifier_hash(value[len(_DEVICE_PREFIX) :])
    elif path and is_checkout_column(path[-1]):
        yield checkout_key(value)


def record_keys(text: str, resource: str | None = None) -> set[str]:
    """The tombstone keys of every person and checkout field of a record kept as text (a
    quarantine row's `record`): walked as JSON, or, when it is not JSON (a line cut off, a
    broken quote), read field by field from its `"key": value` pairs."""
    try:
        return set(_leaf_values(json.loads(text), (), resource))
    except ValueError:
        keys: set[str] = set()
        for key, quoted, number in _TEXT_PAIR.findall(text):
            # No resource: where a bare `id` sits is unknown here (a customer's own, or their
            # address's), so only fields that name a person by their name count.
            keys.update(_field_keys((key,), quoted or number, None))
        return keys


def _leaf_values(value: Any, path: tuple[str, ...], resource: str | None) -> Iterable[str]:
    """The tombstone key of each person field's value anywhere in a record (its hash, or
    `checkout:<hash>` for a checkout token); a quarantined record's text is read too."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaf_values(child, (*path, str(key)), resource)
    elif isinstance(value, list):
        for child in value:
            yield from _leaf_values(child, path, resource)
    elif isinstance(value, str) and path and path[-1] == "record":
        yield from record_keys(value, resource)
    elif value is not None and not isinstance(value, bool):
        yield from _field_keys(path, value, resource)


def _is_erased_link(item: Any, tombstone: frozenset[str]) -> bool:
    return (
        isinstance(item, dict)
        and item.get(LINK_TYPE) in PERSON_LINK_TYPES
        and item.get(LINK_ID) is not None
        and link_key(item[LINK_TYPE], identifier_hash(item[LINK_ID])) in tombstone
    )


def without_erased_links(record: dict[str, Any], tombstone: frozenset[str]) -> dict[str, Any]:
    """`record` without its links (`LINK_TYPE`/`LINK_ID` items of a list) to erased people; a
    quarantine row's record (JSON text, in the vendor's own form) without them too."""
    for key, value in record.items():
        if isinstance(value, list) and any(_is_erased_link(item, tombstone) for item in value):
            record[key] = [item for item in value if not _is_erased_link(item, tombstone)]
    quarantined = record.get("record")
    if isinstance(quarantined, str) and RAW_LINKS_MARK in quarantined:
        record["record"] = _without_erased_raw_links(quarantined, tombstone)
    return record


def raw_links(record: Any) -> Iterator[tuple[str, Any]]:
    """(link type, id) of each link to a person in a record as the vendor serves it: HubSpot's
    `associations.<type>.results[].id`, before the loader makes them child rows."""
    block = record.get(RAW_LINKS_KEY) if isinstance(record, dict) else None
    if not isinstance(block, dict):
        return
    for link_type in PERSON_LINK_TYPES:
        links = block.get(link_type)
        for link in (links.get("results") or []) if isinstance(links, dict) else []:
            if isinstance(link, dict) and link.get("id") is not None:
                yield link_type, link["id"]


def _without_erased_raw_links(text: str, tombstone: frozenset[str]) -> str:
    """A quarantined record's JSON without its raw-form links to erased people. The record
    stays in quarantine (it is the shop's, and is read again): only the link goes."""
    try:
        record = json.loads(text)
    except ValueError:
        return text
    erased = {
        (link_type, str(link_id))
        for link_type, link_id in raw_links(record)
        if link_key(link_type, identifier_hash(link_id)) in tombstone
    }
    if not erased:
        return text
    for link_type in {t for t, _ in erased}:
        block = record[RAW_LINKS_KEY][link_type]
        block["results"] = [r for r in block["results"] if (link_type, str(r.get("id"))) not in erased]
    return json.dumps(record, default=str, sort_keys=True)


def carries_erased(record: Any, tombstone: frozenset[str], resource: str | None = None) -> bool:
    """Whether a record names a tombstoned person in any of its person fields."""
    return any(key in tombstone for key in _leaf_values(record, (), resource))


def _filter_arrow(table: Any, tombstone: frozenset[str]) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    keep = None
    for name in table.column_names:
        if is_person_column(name):
            key = identifier_hash
        elif is_checkout_column(name):
            key = checkout_key
        else:
            continue
        data_type = table.schema.field(name).type
        if not (pa.types.is_string(data_type) or pa.types.is_integer(data_type)):
            continue
        column = table.column(name)
        # Hash each distinct value once: a night's events carry few devices and users.
        erased = [v for v in pc.unique(column).to_pylist() if v is not None and key(v) in tombstone]
        if not erased:
            continue
        hit = pc.fill_null(pc.is_in(column, value_set=pa.array(erased, type=column.type)), False)
        keep = pc.invert(hit) if keep is None else pc.and_(keep, pc.invert(hit))
    return table if keep is None else table.filter(keep)


class ErasureFilter(ItemTransform[Any, dict[str, Any]]):
    """A dlt pipe step: records of erased people never reach the extract's files, and a record
    linking to one (a deal to their contact) reaches them without the link."""

    def __init__(self, tombstone: frozenset[str], resource: str) -> None:
        super().__init__(lambda item: item)
        self.tombstone = tombstone
        self.resource = resource

    def _keep(self, item: Any) -> Any:
        if hasattr(item, "column_names") and hasattr(item, "filter"):  # an Arrow table or batch
            filtered = _filter_arrow(item, self.tombstone)
            return filtered if filtered.num_rows else None
        if isinstance(item, dict):
            item = without_erased_links(item, self.tombstone)
        return None if carries_erased(item, self.tombstone, self.resource) else item

    def __call__(self, item: Any, meta: Any = None) -> Any:
        if isinstance(item, list):
            kept = [k for k in (self._keep(i) for i in item) if k is not None]
            return kept or None
        return self._keep(item)


def drop_erased(source: DltSource, warehouse: Path) -> DltSource:
    """`source` with every resource dropping records of people erased from `warehouse`, and
    without the erasure requests already processed there: a processed request names its
    person (by email, or by identifiers only, which no person field holds) and the shop's
    endpoint or file goes on listing it."""
    processed = read_processed_requests(warehouse) if ERASURE_REQUESTS_RESOURCE in source.resources else ()
    if processed:
        source.resources[ERASURE_REQUESTS_RESOURCE].add_filter(lambda item: item["request_id"] not in processed)
    return drop_tombstoned(source, read_tombstone(warehouse))


def drop_tombstoned(source: DltSource, tombstone: frozenset[str]) -> DltSource:
    """`source` with every resource dropping records that carry one of `tombstone`'s hashes
    (from `read_tombstone`, read once when several sources are built at the same time)."""
    if tombstone:
        for name, resource in source.resources.items():
            resource.add_step(ErasureFilter(tombstone, name))
    return source
