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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.server.state import SandboxState, StoredObject, parse_ts
from sandbox.server.vendors.klaviyo.api import VENDOR, Ctx

_TS = pa.timestamp("us", tz="UTC")
#: A bulk write stamps thousands of objects with the same few times: parse each once.
_ts = functools.lru_cache(maxsize=4096)(parse_ts)


@dataclass(frozen=True)
class Overlay:
    """One overlay table: its name in SQL, the object kind it comes from, and its columns."""

    name: str
    kind: str
    schema: pa.Schema
    row: Callable[[StoredObject], dict[str, Any]]


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
        "attributes_json": orjson.dumps(obj.payload["attributes"]).decode(),
        "created": _ts(obj.created_at),
        "updated": _ts(obj.updated_at),
    },
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
        "properties": orjson.dumps(obj.payload["properties"]).decode(),
    },
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
    """One overlay's table and the store key of each of its rows (to replace updated rows)."""

    table: pa.Table
    keys: pa.Array


@dataclass
class _Cache:
    lock: threading.Lock = field(default_factory=threading.Lock)
    tables: dict[str, _Table] = field(default_factory=dict)  # kind -> table


_CACHES: WeakKeyDictionary[SandboxState, _Cache] = WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _cache(state: SandboxState) -> _Cache:
    with _CACHES_LOCK:
        return _CACHES.setdefault(state, _Cache())


def _build(ctx: Ctx, overlay: Overlay) -> _Table:
    objects = ctx.state.destinations.list_objects(VENDOR, overlay.kind)
    table = pa.Table.from_pylist([overlay.row(obj) for obj in objects], schema=overlay.schema)
    return _Table(table, pa.array([obj.key for obj in objects], pa.string()))


def use(ctx: Ctx, *overlays: Overlay) -> None:
    """Register these overlays on the request's cursor. Each table is read from the store
    once per served world and then kept current by `put`/`put_many`, so a read after a
    write costs no rebuild (a 100k-profile push would otherwise re-parse every object per
    request)."""
    cache = _cache(ctx.state)
    for overlay in overlays:
        with cache.lock:
            entry = cache.tables.get(overlay.kind)
            if entry is None:
                entry = cache.tables[overlay.kind] = _build(ctx, overlay)
        ctx.overlay(overlay.name, entry.table)


def put_many(
    ctx: Ctx, overlay: Overlay, items: list[tuple[str, dict[str, Any]]], *, keep_existing: bool = False
) -> list[bool]:
    """Store objects of the overlay's kind in one transaction and update its cached table;
    returns per item whether it was new (with `keep_existing`, an existing key is untouched)."""
    if not items:
        return []
    cache = _cache(ctx.state)
    with cache.lock:  # store and table change together, in the same order for every writer
        stored = ctx.state.destinations.upsert_many(VENDOR, overlay.kind, items, keep_existing=keep_existing)
        entry = cache.tables.get(overlay.kind)
        if entry is not None:
            written = {obj.key: obj for obj, created in stored if created or not keep_existing}
            if written:
                keys = pa.array(list(written), pa.string())
                keep = pc.invert(pc.is_in(entry.keys, value_set=keys))
                fresh = pa.Table.from_pylist([overlay.row(obj) for obj in written.values()], schema=overlay.schema)
                table = pa.concat_tables([entry.table.filter(keep), fresh])
                all_keys = pa.concat_arrays([entry.keys.filter(keep), keys])
                if table.column(0).num_chunks > 64:  # keep scans over few chunks
                    table = table.combine_chunks()
                cache.tables[overlay.kind] = _Table(table, all_keys)
    return [created for _, created in stored]


def put(ctx: Ctx, overlay: Overlay, key: str, payload: dict[str, Any]) -> None:
    """Store one object of the overlay's kind and update its cached table."""
    put_many(ctx, overlay, [(key, payload)])
