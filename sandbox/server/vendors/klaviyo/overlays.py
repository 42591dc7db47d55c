"""What push clients wrote, as tables DuckDB can join with the store's views.

API writes live in the destinations store (SQLite) as objects of a kind: "profile", "list",
"list_member", "metric", "event", "suppression", "deleted_profile". Reads join them with the
store through Arrow tables registered on the request's cursor. A table is built from the
store once per served world and then kept current by every write made through `put` or
`put_many` (every Klaviyo write goes through them; nothing else writes these kinds).
"""

from __future__ import annotations

import functools
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.server.state import SandboxState, format_ts, parse_ts
from sandbox.server.vendors.klaviyo.api import VENDOR, Ctx

_TS = pa.timestamp("us", tz="UTC")
#: A bulk write stamps thousands of objects with the same few times: parse each once.
_ts = functools.lru_cache(maxsize=4096)(parse_ts)


class _Obj(NamedTuple):
    """An object as the overlay's row builder sees it; `encoded` is the JSON text of the
    payload field the row keeps as JSON (encoded once, for the row and for the store)."""

    key: str
    payload: dict[str, Any]
    created_at: str
    updated_at: str
    encoded: str = ""


@dataclass(frozen=True)
class Overlay:
    """One overlay table: its name in SQL, the object kind it comes from, its columns, and
    the payload field its rows keep as JSON text, if any."""

    name: str
    kind: str
    schema: pa.Schema
    row: Callable[[_Obj], dict[str, Any]]
    json_field: str | None = None

    def obj(self, key: str, payload: dict[str, Any], created_at: str, updated_at: str) -> _Obj:
        encoded = orjson.dumps(payload[self.json_field], default=str).decode() if self.json_field else ""
        return _Obj(key, payload, created_at, updated_at, encoded)

    def payload_json(self, obj: _Obj) -> str:
        """The payload as the store keeps it, reusing the field already encoded."""
        if not self.json_field:
            return orjson.dumps(obj.payload, default=str).decode()
        if len(obj.payload) == 1 and self.json_field in obj.payload:  # a profile's attributes alone
            return f'{{"{self.json_field}":{obj.encoded}}}'
        return orjson.dumps({**obj.payload, self.json_field: orjson.Fragment(obj.encoded)}, default=str).decode()


PROFILES = Overlay(
    "klaviyo_profile_overlay",
    "profile",
    pa.schema(
        [
            ("id", pa.string()),
            ("email", pa.string()),
            ("phone_number", pa.string()),
            ("external_id", pa.string()),
            ("attributes_json", pa.string()),
            ("created", _TS),
            ("updated", _TS),
        ]
    ),
    lambda obj: {
        "id": obj.key,
        "email": obj.payload["attributes"].get("email"),
        "phone_number": obj.payload["attributes"].get("phone_number"),
        "external_id": obj.payload["attributes"].get("external_id"),
        "attributes_json": obj.encoded,
        "created": _ts(obj.created_at),
        "updated": _ts(obj.updated_at),
    },
    json_field="attributes",
)
LISTS = Overlay(
    "klaviyo_list_overlay",
    "list",
    pa.schema(
        [
            ("id", pa.string()),
            ("name", pa.string()),
            ("opt_in_process", pa.string()),
            ("created", _TS),
            ("updated", _TS),
        ]
    ),
    lambda obj: {
        "id": obj.key,
        "name": obj.payload["name"],
        "opt_in_process": obj.payload["opt_in_process"],
        "created": _ts(obj.created_at),
        "updated": _ts(obj.updated_at),
    },
)
#: `member` false records a removal; `at` is the world clock of the last add or removal.
MEMBERS = Overlay(
    "klaviyo_member_overlay",
    "list_member",
    pa.schema([("list_id", pa.string()), ("profile_id", pa.string()), ("member", pa.bool_()), ("at", _TS)]),
    lambda obj: {**obj.payload, "at": _ts(obj.updated_at)},
)
METRICS = Overlay(
    "klaviyo_metric_overlay",
    "metric",
    pa.schema([("id", pa.string()), ("name", pa.string()), ("created", _TS), ("updated", _TS)]),
    lambda obj: {
        "id": obj.key,
        "name": obj.payload["name"],
        "created": _ts(obj.created_at),
        "updated": _ts(obj.updated_at),
    },
)
EVENTS = Overlay(
    "klaviyo_event_overlay",
    "event",
    pa.schema(
        [
            ("id", pa.string()),
            ("metric_id", pa.string()),
            ("profile_id", pa.string()),
            ("datetime", _TS),
            ("properties", pa.string()),
        ]
    ),
    lambda obj: {
        "id": obj.payload["event_id"],
        "metric_id": obj.payload["metric_id"],
        "profile_id": obj.payload["profile_id"],
        "datetime": _ts(obj.payload["datetime"]),
        "properties": obj.encoded,
    },
    json_field="properties",
)


#: Suppressions made through Bulk Suppress Profiles, by lowercased email.
SUPPRESSIONS = Overlay(
    "klaviyo_suppression_overlay",
    "suppression",
    pa.schema([("email", pa.string()), ("at", _TS)]),
    lambda obj: {"email": obj.key, "at": _ts(obj.payload["at"])},
)
#: Profiles deleted through Request Profile Deletion, by profile id.
DELETED = Overlay(
    "klaviyo_deleted_profile_overlay",
    "deleted_profile",
    pa.schema([("id", pa.string()), ("at", _TS)]),
    lambda obj: {"id": obj.key, "at": _ts(obj.payload["at"])},
)


@dataclass
class _Table:
    """One overlay's table, the store key of each of its rows (to replace updated rows), and
    what a write needs to know without reading the store: when each key was first stored
    and, for profiles, which keys hold each lowercased email."""

    table: pa.Table
    keys: pa.ChunkedArray  # in chunks like the table's, so appending copies neither
    created: dict[str, str]
    # Rows of the objects written since the table was last built, and keys of table rows
    # they replace: the table is brought up to date when a read needs it, so a bulk write
    # spends nothing on Arrow (the pushes' lookups read the indexes here, not the table).
    # Rows, not payloads: a row holds strings and times, which the garbage collector does
    # not track, where a payload kept the request's parsed objects alive and walked by it.
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)
    email_of: dict[str, str] = field(default_factory=dict)
    # Keys by email in tuples, which the garbage collector stops walking, not sets (a set
    # per profile written was 100,000 more objects for every full collection to visit).
    by_email: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def current(self, overlay: Overlay) -> pa.Table:
        """The table with every pending object in it."""
        if self.pending:
            table, keys = self.table, self.keys
            if self.stale:
                keep = pc.invert(pc.is_in(keys, value_set=pa.array(list(self.stale), pa.string())))
                table, keys = table.filter(keep), keys.filter(keep)
            fresh = pa.Table.from_pylist(list(self.pending.values()), schema=overlay.schema)
            table = pa.concat_tables([table, fresh])
            keys = pa.chunked_array([*keys.chunks, pa.array(list(self.pending), pa.string())])
            if table.column(0).num_chunks > 64:  # keep scans over few chunks
                table = table.combine_chunks()
                keys = pa.chunked_array([keys.combine_chunks()], pa.string())
            self.table, self.keys = table, keys
            self.pending, self.stale = {}, set()
        return self.table

    def index_email(self, key: str, email: Any) -> None:
        lowered = email.lower() if isinstance(email, str) and email else None
        old = self.email_of.get(key)
        if old == lowered:
            return
        if old is not None:
            del self.email_of[key]
            rest = tuple(k for k in self.by_email[old] if k != key)
            if rest:
                self.by_email[old] = rest
            else:
                del self.by_email[old]
        if lowered is not None:
            self.email_of[key] = lowered
            self.by_email[lowered] = (*self.by_email.get(lowered, ()), key)


@dataclass
class _Cache:
    tables: dict[str, _Table] = field(default_factory=dict)  # kind -> table
    # One lock per kind: an events request does not wait for an import job's profiles.
    locks: dict[str, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))

    def lock(self, overlay: Overlay) -> threading.Lock:
        with _CACHES_LOCK:
            return self.locks[overlay.kind]


_CACHES: WeakKeyDictionary[SandboxState, _Cache] = WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _cache(state: SandboxState) -> _Cache:
    with _CACHES_LOCK:
        return _CACHES.setdefault(state, _Cache())


def _email(overlay: Overlay, payload: dict[str, Any]) -> Any:
    return payload["attributes"].get("email") if overlay is PROFILES else None


def _entry(ctx: Ctx, cache: _Cache, overlay: Overlay) -> _Table:
    """The overlay's table, read from the store the first time. Caller holds its lock."""
    entry = cache.tables.get(overlay.kind)
    if entry is None:
        objects = [
            overlay.obj(o.key, o.payload, o.created_at, o.updated_at)
            for o in ctx.state.destinations.list_objects(VENDOR, overlay.kind)
        ]
        table = pa.Table.from_pylist([overlay.row(obj) for obj in objects], schema=overlay.schema)
        keys = pa.chunked_array([pa.array([obj.key for obj in objects], pa.string())])
        entry = _Table(table, keys, {obj.key: obj.created_at for obj in objects})
        for obj in objects:
            entry.index_email(obj.key, _email(overlay, obj.payload))
        cache.tables[overlay.kind] = entry
    return entry


def use(ctx: Ctx, *overlays: Overlay) -> list[pa.Table]:
    """Register these overlays on the request's cursor; returns their tables. Each table is
    read from the store once per served world and then kept current by `put`/`put_many`, so
    a read after a write costs no rebuild (a 100k-profile push would otherwise re-parse every
    object per request). A write replaces the table rather than changing it, so what was
    derived from a table stays right while the table is the current one."""
    cache = _cache(ctx.state)
    tables = []
    for overlay in overlays:
        with cache.lock(overlay):
            table = _entry(ctx, cache, overlay).current(overlay)
        ctx.overlay(overlay.name, table)
        tables.append(table)
    return tables


def put_many(
    ctx: Ctx, overlay: Overlay, items: list[tuple[str, dict[str, Any]]], *, keep_existing: bool = False
) -> list[bool]:
    """Store objects of the overlay's kind and update its cached table; returns per item
    whether it was new (with `keep_existing`, an existing key is untouched). Later items win
    over earlier ones with the same key. Reads see the objects at once (the table takes them
    when next used); the store's file is written behind (`DestinationStore.write_behind`),
    in the same order for every writer."""
    if not items:
        return []
    cache = _cache(ctx.state)
    with cache.lock(overlay):
        entry = _entry(ctx, cache, overlay)
        now = format_ts(ctx.state.clock)
        created, pending, stale = entry.created, entry.pending, entry.stale
        row, payload_json, json_field = overlay.row, overlay.payload_json, overlay.json_field
        written: dict[str, tuple[str, str]] = {}  # key -> (payload JSON, created_at)
        created_flags: list[bool] = []
        for key, payload in items:
            known = created.get(key)
            if known is None:
                created[key] = first = now
            elif keep_existing:
                created_flags.append(False)
                continue
            else:
                first = known
                if key not in pending:
                    stale.add(key)  # a row of the built table
            encoded = orjson.dumps(payload[json_field], default=str).decode() if json_field else ""
            obj = _Obj(key, payload, first, now, encoded)
            pending[key] = row(obj)
            written[key] = (payload_json(obj), first)
            created_flags.append(known is None)
            if overlay is PROFILES:
                entry.index_email(key, payload["attributes"].get("email"))
        if written:
            ctx.state.destinations.write_behind(
                VENDOR, overlay.kind, [(key, body, first, now) for key, (body, first) in written.items()]
            )
    return created_flags


def put(ctx: Ctx, overlay: Overlay, key: str, payload: dict[str, Any]) -> None:
    """Store one object of the overlay's kind and update its cached table."""
    put_many(ctx, overlay, [(key, payload)])


def profile_keys_by_email(ctx: Ctx, emails: list[str]) -> dict[str, tuple[str, ...]]:
    """Keys of the profiles written through the API that hold each (lowercased) email now,
    deleted ones included, for the emails some such profile holds: a lookup that needs no
    query."""
    cache = _cache(ctx.state)
    with cache.lock(PROFILES):
        index = _entry(ctx, cache, PROFILES).by_email
        return {e: keys for e in emails if (keys := index.get(e))}


def deleted_profile_ids(ctx: Ctx) -> set[str]:
    """Profiles deleted through Request Profile Deletion."""
    cache = _cache(ctx.state)
    with cache.lock(DELETED):
        return set(_entry(ctx, cache, DELETED).created)
