"""Profiles: the world's `klaviyo_profiles` overlaid with what push clients wrote.

A profile written through the API (Create or Update Profile, bulk import, Create Event) is
stored whole in the destinations store (kind "profile", key profile id) with every served
attribute; it replaces the store row's attributes, while consent keeps coming from the store
columns as of the clock (the API writes here never change consent, exactly like Klaviyo's
profile import, which is why an audience push cannot subscribe anyone).
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
import orjson
import pyarrow as pa
from starlette.responses import Response

from sandbox.server.cache import Cache, cache
from sandbox.server.state import SandboxState
from sandbox.server.vendors.klaviyo import overlays, windows
from sandbox.server.vendors.klaviyo.api import VENDOR, Ctx, KlaviyoError, invalid, iso, jsonapi, not_found
from sandbox.server.vendors.klaviyo.query import (
    Collection,
    Row,
    fetch_one,
    ff,
    list_response,
    query_rows,
    requested,
    sparse,
)
from sandbox.server.vendors.klaviyo.windows import Part, Slice, Windowed

#: Serializes read-modify-write of profiles so two writes for one new email create one profile.
WRITE_LOCK = threading.Lock()

_IDENTIFIERS = ("email", "phone_number", "external_id")
_SCALARS = (*_IDENTIFIERS, "first_name", "last_name", "organization", "locale", "title", "image")
_LOCATION = (
    "address1",
    "address2",
    "city",
    "country",
    "latitude",
    "longitude",
    "region",
    "zip",
    "timezone",
    "ip",
)
_SCALAR_SET = frozenset(_SCALARS)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


#: Every pair of Crockford letters, by the 10 bits it encodes.
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_ULID_LOCK = threading.Lock()
#: The last id made: its millisecond, its 80 random bits, and its first 24 letters.
_ULID_LAST: list[Any] = [0, 0, ""]


def new_ulid() -> str:
    """A 26-character ULID like Klaviyo's profile ids: 48 bits of milliseconds and 80 random
    bits; ids made within one millisecond count up from the first one's random bits (ULID's
    monotonic form). Ids made later sort later, as Klaviyo's do, so a bulk job's profiles,
    memberships and events (keyed by profile id) land at the end of the store's key index
    instead of all over it: random ids made SQLite rewrite a page of that index per row."""
    ms = time.time_ns() // 1_000_000
    with _ULID_LOCK:
        last_ms, bits, head = _ULID_LAST
        if ms > last_ms:
            # The top bit left clear: the millisecond can count up 2**79 times.
            bits = int.from_bytes(os.urandom(10), "big") >> 1
            stamp = "".join(_CROCKFORD[(ms >> shift) & 31] for shift in range(45, -5, -5))
        else:  # the same millisecond (or the wall clock stepped back): count up
            ms, bits, stamp = last_ms, bits + 1, head[:10]
        if ms != last_ms or not bits & 1023:  # the letters before the last two changed
            head = stamp + "".join(_PAIRS[(bits >> shift) & 1023] for shift in range(70, 0, -10))
        _ULID_LAST[:] = ms, bits, head
    return head + _PAIRS[bits & 1023]


_STORE_KEYS: WeakKeyDictionary[SandboxState, tuple[frozenset[str], frozenset[str]]] = WeakKeyDictionary()
_STORE_KEYS_LOCK = threading.Lock()


def _store_keys(ctx: Ctx) -> tuple[frozenset[str], frozenset[str]]:
    """Ids and lowercased emails of every profile in the world's store, visible yet or not
    (the store does not change while it is served). An email outside this set can only
    belong to profiles written through the API, which the overlay indexes."""
    with _STORE_KEYS_LOCK:
        keys = _STORE_KEYS.get(ctx.state)
        if keys is None:
            rows = ctx.db().execute("SELECT profile_id, lower(email) FROM klaviyo_profiles").fetchall()
            keys = frozenset(r[0] for r in rows), frozenset(r[1] for r in rows if r[1])
            _STORE_KEYS[ctx.state] = keys
        return keys


def _is_new_by_email(upsert: Upsert, store_emails: frozenset[str], written: dict[str, tuple[str, ...]]) -> bool:
    """Whether a profile named by email alone can match no existing profile: its email is
    in neither the store nor any profile written through the API."""
    attributes = upsert.attributes
    email = attributes.get("email")
    if upsert.profile_id or not isinstance(email, str) or not email:
        return False
    if attributes.get("phone_number") or attributes.get("external_id"):
        return False
    lowered = email.lower()
    return lowered not in store_emails and not written.get(lowered)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _gated(column: str) -> str:
    return f"CASE WHEN s.{column} <= $clock THEN s.{column} END"


_CHANGES = ", ".join(
    [
        "s.created_at",
        *(_gated(c) for c in ("subscribed_at", "unsubscribed_at", "bounced_at", "spam_complaint_at")),
        "o.updated",
    ]
)
#: The relation `profile_source` gives, over the overlays it registers.
_PROFILE_SQL = f"""
    SELECT p.* REPLACE (greatest(p.updated, date_trunc('second', u.at)) AS updated),
        u.at AS user_suppressed_at
    FROM (
    SELECT s.profile_id AS id,
        CASE WHEN o.id IS NULL THEN s.email ELSE o.email END AS email,
        CASE WHEN o.id IS NULL THEN s.phone_number ELSE o.phone_number END AS phone_number,
        o.external_id, o.attributes_json,
        s.first_name, s.last_name, s.city, s.region, s.country, s.zip, s.membership_tier,
        s.consent_method,
        {_gated("subscribed_at")} AS subscribed_at,
        {_gated("unsubscribed_at")} AS unsubscribed_at,
        {_gated("bounced_at")} AS bounced_at,
        {_gated("spam_complaint_at")} AS spam_complaint_at,
        date_trunc('second', s.created_at) AS created,
        date_trunc('second', greatest({_CHANGES})) AS updated
    FROM klaviyo_profiles AS s LEFT JOIN {overlays.PROFILES.name} AS o ON o.id = s.profile_id
    WHERE s.created_at <= $clock
    UNION ALL BY NAME
    SELECT o.id, o.email, o.phone_number, o.external_id, o.attributes_json,
        date_trunc('second', o.created) AS created, date_trunc('second', o.updated) AS updated
    FROM {overlays.PROFILES.name} AS o
    WHERE o.id NOT IN (SELECT profile_id FROM klaviyo_profiles)
    ) AS p
    LEFT JOIN {overlays.SUPPRESSIONS.name} AS u ON u.email = lower(p.email)
    WHERE p.id NOT IN (SELECT id FROM {overlays.DELETED.name})
"""


def profile_source(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    """Visible profiles: store rows created by the clock (API-written attributes win), plus
    profiles created through the API. `updated` is the latest change at or before the clock.
    Profiles deleted through Request Profile Deletion are gone; a suppression made through
    Bulk Suppress Profiles shows as `user_suppressed_at` (matched by email)."""
    overlays.use(ctx, overlays.PROFILES, overlays.SUPPRESSIONS, overlays.DELETED)
    return _PROFILE_SQL, {"clock": ctx.state.clock}


# --------------------------------------------------------------------------------------------
# Visible profiles, materialized for paging
# --------------------------------------------------------------------------------------------

#: Names the materialized profiles and a page's window of them take on a request's cursor.
VISIBLE = "klaviyo_visible_profiles"
_WINDOW = "klaviyo_profile_window"


@dataclass(frozen=True)
class Visible:
    """The rows of `profile_source` at one clock and one state of the overlays it reads, with
    `_pos`, each row's position in `table`; and what is derived from them (sorted parts),
    which goes when they do."""

    clock: datetime
    table: pa.Table
    derived: Cache


def visible_profiles(ctx: Ctx) -> Visible:
    """Every visible profile, computed once per clock and state of the overlays: the relation
    reads and joins the whole store (half a second to a second at a million customers), which
    a page should not pay. A write or a clock move makes the next read compute it afresh."""
    tables = overlays.use(ctx, overlays.PROFILES, overlays.SUPPRESSIONS, overlays.DELETED)
    clock = ctx.state.clock

    def build() -> Visible:
        # Over the overlay tables just registered, which are the ones named in the version.
        table = ctx.db().sql(_PROFILE_SQL, params={"clock": clock}).to_arrow_table()
        positions = pa.array(np.arange(table.num_rows, dtype=np.int32))
        # One chunk per column: taking rows from a chunked column joins its chunks first.
        table = table.append_column("_pos", positions).combine_chunks()
        return Visible(clock, table, Cache())

    return cache(ctx.state).get("visible_profiles", (clock, *tables), build)


def visible_order(
    ctx: Ctx,
    visible: Visible,
    sql: str,
    sort_sql: str,
    params: dict[str, Any] | None = None,
    columns: tuple[str, ...] = (),
) -> tuple[pa.Table, Part] | None:
    """The rows of `sql`, a relation over the visible profiles (registered as `VISIBLE`) with
    their `_pos` and `id`, in (sort, id) order: a table of `_pos` and `columns`, and the part
    of their (sort, id) keys; None if a key is null."""
    ctx.overlay(VISIBLE, visible.table)
    wanted = ", ".join(["_pos", "id", *columns, f"{sort_sql} AS _key"])
    query = f"SELECT {wanted} FROM ({sql}) AS r ORDER BY _key, id"
    ordered = ctx.db().sql(query, params=params or {}).to_arrow_table()
    keys = windows.part(ordered["_key"], ordered["id"])
    return None if keys is None else (ordered.select(["_pos", *columns]).combine_chunks(), keys)


def take_visible(visible: Visible, positions: pa.Array) -> pa.Table:
    """The visible profiles at these positions, as `profile_source` gives them."""
    return visible.table.take(positions).drop_columns(["_pos"])


def _profile_windows(ctx: Ctx, sort_sql: str) -> Windowed | None:
    """The visible profiles in the sort's order (computed once per version and sort); a
    window is the rows at its positions, taken from the materialized relation."""
    visible = visible_profiles(ctx)
    sql = f"SELECT * FROM {VISIBLE}"
    order = visible.derived.get(("profiles", sort_sql), (), lambda: visible_order(ctx, visible, sql, sort_sql))
    if order is None:
        return None
    ordered, keys = order

    def relation(slices: list[Slice]) -> tuple[str, dict[str, Any]]:
        ((lo, hi),) = slices
        ctx.overlay(_WINDOW, take_visible(visible, ordered["_pos"].slice(lo, hi - lo)))
        return f"SELECT * FROM {_WINDOW}", {}

    def whole() -> tuple[str, dict[str, Any]]:
        ctx.overlay(VISIBLE, visible.table)
        return f"SELECT * EXCLUDE (_pos) FROM {VISIBLE}", {}

    return Windowed([keys], relation, whole)


def _store_attributes(row: Row) -> dict[str, Any]:
    """The served attributes of a store profile (membership tier is a custom property)."""
    location = dict.fromkeys(_LOCATION)
    location.update(city=row["city"], region=row["region"], country=row["country"], zip=row["zip"])
    tier = row.get("membership_tier")
    return {
        **dict.fromkeys(_SCALARS),
        "email": row["email"],
        "phone_number": row["phone_number"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "location": location,
        "properties": {"membership_tier": tier} if tier else {},
    }


def current_attributes(row: Row) -> dict[str, Any]:
    if row.get("attributes_json"):
        return orjson.loads(row["attributes_json"])
    return _store_attributes(row)


def _email_marketing(row: Row) -> dict[str, Any]:
    """Consent as of the clock: unsubscribed beats subscribed; bounces and spam complaints
    are suppressions that stop sending without changing consent."""
    if row.get("unsubscribed_at"):
        consent, when = "UNSUBSCRIBED", row["unsubscribed_at"]
    elif row.get("subscribed_at"):
        consent, when = "SUBSCRIBED", row["subscribed_at"]
    else:
        consent, when = "NEVER_SUBSCRIBED", None
    reasons = (
        ("HARD_BOUNCE", "bounced_at"),
        ("SPAM_COMPLAINT", "spam_complaint_at"),
        ("USER_SUPPRESSED", "user_suppressed_at"),
    )
    suppression = [{"reason": reason, "timestamp": iso(row[column])} for reason, column in reasons if row.get(column)]
    stamps = [t for t in (when, *(row.get(column) for _, column in reasons)) if t]
    return {
        "can_receive_email_marketing": consent == "SUBSCRIBED" and not suppression,
        "consent": consent,
        "consent_timestamp": iso(when),
        "last_updated": iso(max(stamps)) if stamps else None,
        "method": row.get("consent_method") if when else None,
        "method_detail": None,
        "custom_method_detail": None,
        "double_optin": None,
        "suppression": suppression,
        "list_suppressions": [],
    }


def subscriptions(row: Row) -> dict[str, Any]:
    sms = {
        "can_receive_sms_marketing": False,
        "consent": "NEVER_SUBSCRIBED",
        "consent_timestamp": None,
        "method": None,
        "method_detail": None,
        "last_updated": None,
    }
    return {"email": {"marketing": _email_marketing(row)}, "sms": {"marketing": sms}}


def additional_fields(ctx: Ctx) -> set[str]:
    raw = ctx.query.get("additional-fields[profile]")
    names = {n.strip() for n in raw.split(",") if n.strip()} if raw else set()
    if "predictive_analytics" in names:
        raise invalid(
            "additional-fields[profile]=predictive_analytics is not available in this account.",
            parameter="additional-fields[profile]",
        )
    if names - {"subscriptions"}:
        raise invalid(
            f"Invalid additional-fields[profile]: {raw}. Supported values: subscriptions, predictive_analytics.",
            parameter="additional-fields[profile]",
        )
    return names


def _store_last_events(ctx: Ctx, clock: datetime) -> tuple[pa.Array, pa.Array]:
    """Each profile's latest store event at or before the clock, as (profile ids in order,
    datetimes): computed once per clock, since a page of profiles looking its own up read
    every store event (4.7M at a million customers) for a hundred profiles."""

    def build() -> tuple[pa.Array, pa.Array]:
        table = (
            ctx.db()
            .sql(
                "SELECT profile_id, max(datetime) AS at FROM klaviyo_events"
                " WHERE datetime <= $clock AND profile_id IS NOT NULL GROUP BY 1 ORDER BY 1",
                params={"clock": clock},
            )
            .to_arrow_table()
        )
        return table["profile_id"].combine_chunks(), table["at"].combine_chunks()

    return cache(ctx.state).get("store_last_events", (clock,), build)


def _last_event_dates(ctx: Ctx, ids: list[str]) -> dict[str, datetime]:
    """Latest visible event per profile (store events and events created through the API)."""
    if not ids:
        return {}
    clock = ctx.state.clock
    store_ids, store_last = _store_last_events(ctx, clock)
    found = {}
    for pid in ids:
        i = windows.find(store_ids, pid)
        if i is not None:
            found[pid] = store_last[i].as_py()
    overlays.use(ctx, overlays.EVENTS)
    cur = ctx.db().execute(
        f"SELECT profile_id, max(datetime) FROM {overlays.EVENTS.name}"
        " WHERE datetime <= $clock AND profile_id IN (SELECT unnest($ids)) GROUP BY 1",
        {"clock": clock, "ids": ids},
    )
    for pid, at in cur.fetchall():
        found[pid] = max(found[pid], at) if pid in found else at
    return found


def render_profiles(ctx: Ctx, rows: list[Row], extra: dict[str, dict[str, Any]] | None = None) -> list[dict]:
    """Profile resources; `extra` adds attributes per id (e.g. `joined_group_at`)."""
    wanted = additional_fields(ctx)
    asked = requested(ctx, "profile", "last_event_date")
    last_events = _last_event_dates(ctx, [r["id"] for r in rows]) if asked else {}
    out = []
    for row in rows:
        pid = row["id"]
        attributes = {
            **current_attributes(row),
            "created": iso(row["created"]),
            "updated": iso(row["updated"]),
            "last_event_date": iso(last_events.get(pid)),
            **(extra or {}).get(pid, {}),
        }
        if "subscriptions" in wanted:
            attributes["subscriptions"] = subscriptions(row)
        out.append(
            {
                "type": "profile",
                "id": pid,
                "attributes": sparse(ctx, "profile", attributes),
                "relationships": {
                    rel: {
                        "links": {
                            "self": ctx.link(f"/api/profiles/{pid}/relationships/{rel}"),
                            "related": ctx.link(f"/api/profiles/{pid}/{rel}"),
                        }
                    }
                    for rel in ("lists", "segments")
                },
                "links": {"self": ctx.link(f"/api/profiles/{pid}")},
            }
        )
    return out


PROFILE_FILTERS = {
    "id": ff("id", "string", "any", "equals"),
    "email": ff("email", "string", "any", "equals", ci=True),
    "phone_number": ff("phone_number", "string", "any", "equals"),
    "external_id": ff("external_id", "string", "any", "equals"),
    "created": ff("created", "datetime", "greater-than", "less-than"),
    "updated": ff("updated", "datetime", "greater-than", "less-than"),
}

PROFILES = Collection(
    name="profiles",
    source=profile_source,
    render=render_profiles,
    filters=PROFILE_FILTERS,
    sorts={"id": "id", "created": "created", "updated": "updated", "email": "coalesce(email, '')"},
    timestamp_field="attributes.updated",
    windows=_profile_windows,
)


def get_profiles(ctx: Ctx) -> Response:
    return list_response(ctx, PROFILES)


def get_profile(ctx: Ctx) -> Response:
    pid = ctx.request.path_params["id"]
    row = fetch_one(ctx, PROFILES, pid)
    if row is None:
        raise not_found(f"A profile with id {pid} does not exist.")
    return jsonapi({"data": render_profiles(ctx, [row])[0], "links": {"self": ctx.link(f"/api/profiles/{pid}")}})


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def validate_attributes(attributes: Any, pointer: str) -> dict[str, Any]:
    """Check a profile's writable attributes the way Klaviyo does (400 with `source.pointer`)."""
    if not isinstance(attributes, dict):
        raise invalid("Profile attributes must be an object.", pointer=pointer)
    # Only the attributes given are looked at (an event names its profile by email alone);
    # a wrong one is then reported in the documented order, as before. Plain loops and
    # lookups: this runs for every profile of a bulk job and every entry of bulk events.
    for name, value in attributes.items():
        if value is not None and name in _SCALAR_SET and not isinstance(value, str):
            for name in _SCALARS:
                value = attributes.get(name)
                if value is not None and not isinstance(value, str):
                    raise invalid(f"`{name}` must be a string.", pointer=f"{pointer}/{name}")
    email = attributes.get("email")
    if email is not None and not _EMAIL.match(email):
        raise invalid("Invalid email address", pointer=f"{pointer}/email")
    phone = attributes.get("phone_number")
    if phone is not None and not _E164.match(phone):
        raise invalid(
            "Invalid phone number format (Example of a valid format: +13239169023)",
            pointer=f"{pointer}/phone_number",
        )
    location = attributes.get("location")
    if location is not None and not isinstance(location, dict):
        raise invalid("`location` must be an object.", pointer=f"{pointer}/location")
    properties = attributes.get("properties")
    if properties is not None and not isinstance(properties, dict):
        raise invalid("`properties` must be an object.", pointer=f"{pointer}/properties")
    return attributes


def check_reject_fault(ctx: Ctx, attributes: dict[str, Any], pointer: str) -> None:
    """The sandbox's per-record rejection fault (`rate_reject`): the profile is refused as an
    invalid one is, with a 400 naming its email (decided afresh on every attempt)."""
    email = attributes.get("email")
    if isinstance(email, str) and ctx.state.faults.reject_record(VENDOR, "profile", email.lower()):
        raise invalid("The profile was rejected (sandbox fault rate_reject).", pointer=f"{pointer}/email")


def _merge(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Given attributes replace the stored ones; `location` and `properties` merge by key."""
    merged = {**current}
    for name in _SCALARS:
        if name in update:
            merged[name] = update[name]
    # The email a profile was matched by is the same identifier in another case: the stored
    # address stays as it was (an audience push sends addresses lower-cased).
    stored, sent = current.get("email"), update.get("email")
    if isinstance(stored, str) and isinstance(sent, str) and stored.lower() == sent.lower():
        merged["email"] = stored
    for name in ("location", "properties"):
        if update.get(name):
            merged[name] = {**(current.get(name) or {}), **update[name]}
    return merged


def _new_attributes(update: dict[str, Any]) -> dict[str, Any]:
    """`_merge` of an update into a new profile's empty attributes, without building them
    first: the same keys in the same order (a bulk job creates thousands)."""
    merged: dict[str, Any] = dict.fromkeys(_SCALARS)
    for name in update.keys() & _SCALAR_SET:
        merged[name] = update[name]
    location = dict.fromkeys(_LOCATION)
    if update.get("location"):
        location.update(update["location"])
    merged["location"] = location
    properties = update.get("properties")
    merged["properties"] = {**properties} if properties else {}
    return merged


def _identity(name: str, value: str) -> tuple[str, str]:
    """Lookup key of an identifier: Klaviyo matches emails case-insensitively."""
    return name, value.lower() if name == "email" else value


@dataclass
class Upsert:
    """One profile to create or update: validated attributes, an optional profile id, and
    where its attributes sit in the request (for error pointers)."""

    attributes: dict[str, Any]
    profile_id: str | None = None
    pointer: str = "/data/attributes"


def upsert_profiles(ctx: Ctx, items: list[Upsert]) -> list[tuple[str, bool] | KlaviyoError]:
    """Create or update profiles in order; per item (id, created) or the error that item met.

    A profile resolves by id, else by email (case-insensitive), phone number, or external id,
    including profiles created earlier in the same batch. The visible profiles are read once
    per batch, so a 10,000-profile import job is one query, not 10,000."""
    with WRITE_LOCK:
        _, store_emails = _store_keys(ctx)
        emails = [i.attributes["email"].lower() for i in items if isinstance(i.attributes.get("email"), str)]
        written = overlays.profile_keys_by_email(ctx, [e for e in emails if e not in store_emails])
        wanted: dict[str, list[str]] = {"id": [], "email": [], "phone_number": [], "external_id": []}
        for item in items:
            if _is_new_by_email(item, store_emails, written):
                continue  # nothing to look up: a new profile (or one made earlier in this batch)
            if item.profile_id:
                wanted["id"].append(item.profile_id)
            for name in _IDENTIFIERS:
                if item.attributes.get(name):
                    wanted[name].append(_identity(name, item.attributes[name])[1])
        rows: list[Row] = []
        if any(wanted.values()):
            relation, params = profile_source(ctx)
            rows = query_rows(
                ctx,
                f"SELECT * FROM ({relation}) AS r WHERE id IN (SELECT unnest($id))"
                " OR lower(email) IN (SELECT unnest($email)) OR phone_number IN (SELECT unnest($phone_number))"
                " OR external_id IN (SELECT unnest($external_id)) ORDER BY created, id",
                {**params, **wanted},
            )
        current = {row["id"]: current_attributes(row) for row in rows}
        index: dict[tuple[str, str], str] = {}
        for row in rows:  # oldest first wins, as Klaviyo merges into the original profile
            for name in _IDENTIFIERS:
                if row.get(name):
                    index.setdefault(_identity(name, row[name]), row["id"])

        changed: dict[str, dict[str, Any]] = {}
        results: list[tuple[str, bool] | KlaviyoError] = []
        for item in items:
            try:
                pid = _resolve(item, current, index)
            except KlaviyoError as exc:
                results.append(exc)
                continue
            created = pid is None
            if pid is None:
                pid = new_ulid()
                merged = changed[pid] = _new_attributes(item.attributes)
            else:
                base = current[pid]
                merged = _merge(base, item.attributes)
                if merged != base:  # a no-op update leaves `updated` alone
                    changed[pid] = merged
            current[pid] = merged
            email, phone, external = merged.get("email"), merged.get("phone_number"), merged.get("external_id")
            if email:
                index.setdefault(("email", email.lower()), pid)
            if phone:
                index.setdefault(("phone_number", phone), pid)
            if external:
                index.setdefault(("external_id", external), pid)
            results.append((pid, created))
        overlays.put_many(ctx, overlays.PROFILES, [(pid, {"attributes": a}) for pid, a in changed.items()])
    return results


def _resolve(item: Upsert, current: dict[str, dict[str, Any]], index: dict[tuple[str, str], str]) -> str | None:
    """The existing profile an item updates, or None to create one."""
    if item.profile_id:
        if item.profile_id not in current:
            raise not_found(f"A profile with id {item.profile_id} does not exist.")
        return item.profile_id
    attributes = item.attributes
    email, phone, external = attributes.get("email"), attributes.get("phone_number"), attributes.get("external_id")
    if email and not phone and not external:  # the usual case: named by email alone
        return index.get(("email", email.lower()))
    keys = [_identity(n, attributes[n]) for n in _IDENTIFIERS if attributes.get(n)]
    if not keys:
        raise invalid(
            "A profile needs at least one identifier: email, phone_number or external_id.", pointer=item.pointer
        )
    return next((index[k] for k in keys if k in index), None)


def profile_ids_by_email(ctx: Ctx, emails: list[str]) -> dict[str, str]:
    """Visible profile id per lowercased email (the oldest profile, as writes resolve them):
    a read-only lookup for writes that only name a profile, such as events.

    An email that no store profile has and that exactly one live profile written through the
    API holds is answered from the overlay's index; the rest (store emails, several
    candidates) by the query over every visible profile."""
    store_ids, store_emails = _store_keys(ctx)
    written = overlays.profile_keys_by_email(ctx, [e for e in emails if e not in store_emails])
    deleted = overlays.deleted_profile_ids(ctx) if any(written.values()) else set()
    found: dict[str, str] = {}
    ask: list[str] = []
    for email in emails:
        if email in store_emails:
            ask.append(email)
            continue
        keys = written.get(email)
        if keys is None:
            continue
        if len(keys) == 1:  # the usual case, without a set made per email
            (key,) = keys
            if key in deleted:
                continue
            if key in store_ids:
                ask.append(email)
            else:
                found[email] = key
            continue
        live = set(keys) - deleted
        if len(live) == 1 and not live & store_ids:
            found[email] = next(iter(live))
        elif live:
            ask.append(email)
    if not ask:
        return found
    relation, params = profile_source(ctx)
    rows = (
        ctx.db()
        .execute(
            f"SELECT id, lower(email) FROM ({relation}) AS p WHERE lower(email) IN (SELECT unnest($emails))"
            " ORDER BY created, id",
            {**params, "emails": ask},
        )
        .fetchall()
    )
    for pid, email in rows:
        found.setdefault(email, pid)
    return found


def upsert_profile(ctx: Ctx, item: Upsert) -> tuple[str, bool]:
    """Create or update one profile; raises its error."""
    (result,) = upsert_profiles(ctx, [item])
    if isinstance(result, KlaviyoError):
        raise result
    return result


def resource_body(body: dict[str, Any], expected_type: str) -> dict[str, Any]:
    """`body["data"]` checked to be one resource object of the expected JSON:API type (a wrong
    type is a 409 Conflict, as JSON:API prescribes)."""
    data = body["data"]
    if not isinstance(data, dict) or data.get("type") != expected_type:
        raise KlaviyoError(409, f"The resource type must be '{expected_type}'.", pointer="/data/type")
    return data


def profile_import(ctx: Ctx) -> Response:
    """POST /api/profile-import: create (201) or update (200) one profile."""
    body = ctx.body()
    data = resource_body(body, "profile")
    attributes = validate_attributes(data.get("attributes") or {}, "/data/attributes")
    check_reject_fault(ctx, attributes, "/data/attributes")
    pid, created = upsert_profile(ctx, Upsert(attributes, data.get("id")))
    ctx.state.destinations.record(VENDOR, "profile_import", pid, body)
    row = fetch_one(ctx, PROFILES, pid)
    assert row is not None  # just written
    document = {"data": render_profiles(ctx, [row])[0], "links": {"self": ctx.link(f"/api/profiles/{pid}")}}
    return jsonapi(document, 201 if created else 200)
