"""What push clients wrote, as tables DuckDB can join with the store's views.

API writes live in the destinations store (SQLite) as objects of a kind: "profile", "list",
"list_member", "metric", "event". Reads join them with the store through Arrow tables
registered on the request's cursor. Building a table means reading and parsing every object
of its kind, so tables are cached per served world and rebuilt only after a write made
through `put` (every Klaviyo write goes through it; nothing else writes these kinds).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

import pyarrow as pa

from sandbox.server.state import SandboxState, StoredObject, parse_ts
from sandbox.server.vendors.klaviyo.api import VENDOR, Ctx

_TS = pa.timestamp("us", tz="UTC")


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
        "attributes_json": json.dumps(obj.payload["attributes"]),
        "created": parse_ts(obj.created_at),
        "updated": parse_ts(obj.updated_at),
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
        "created": parse_ts(obj.created_at),
        "updated": parse_ts(obj.updated_at),
    },
)
#: `member` false records a removal; `at` is the world clock of the last add or removal.
MEMBERS = Overlay(
    "klaviyo_member_overlay",
    "list_member",
    pa.schema([("list_id", pa.string()), ("profile_id", pa.string()), ("member", pa.bool_()), ("at", _TS)]),
    lambda obj: {**obj.payload, "at": parse_ts(obj.updated_at)},
)
METRICS = Overlay(
    "klaviyo_metric_overlay",
    "metric",
    pa.schema([("id", pa.string()), ("name", pa.string()), ("created", _TS), ("updated", _TS)]),
    lambda obj: {
        "id": obj.key,
        "name": obj.payload["name"],
        "created": parse_ts(obj.created_at),
        "updated": parse_ts(obj.updated_at),
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
        "datetime": parse_ts(obj.payload["datetime"]),
        "properties": json.dumps(obj.payload["properties"]),
    },
)


@dataclass
class _Cache:
    lock: threading.Lock = field(default_factory=threading.Lock)
    versions: dict[str, int] = field(default_factory=dict)  # kind -> writes so far
    tables: dict[str, tuple[int, pa.Table]] = field(default_factory=dict)  # kind -> (version, table)


_CACHES: WeakKeyDictionary[SandboxState, _Cache] = WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _cache(state: SandboxState) -> _Cache:
    with _CACHES_LOCK:
        return _CACHES.setdefault(state, _Cache())


def use(ctx: Ctx, *overlays: Overlay) -> None:
    """Register these overlays on the request's cursor, built or taken from the cache."""
    cache = _cache(ctx.state)
    for overlay in overlays:
        with cache.lock:
            version, hit = cache.versions.get(overlay.kind, 0), cache.tables.get(overlay.kind)
        if hit is not None and hit[0] == version:
            table = hit[1]
        else:
            rows = [overlay.row(obj) for obj in ctx.state.destinations.list_objects(VENDOR, overlay.kind)]
            table = pa.Table.from_pylist(rows, schema=overlay.schema)
            with cache.lock:  # stored under the version read before building: a write meanwhile
                cache.tables[overlay.kind] = (version, table)  # makes the next reader rebuild
        ctx.overlay(overlay.name, table)


def put(ctx: Ctx, overlay: Overlay, key: str, payload: dict[str, Any]) -> None:
    """Store one object of the overlay's kind and invalidate its cached table."""
    ctx.state.destinations.upsert(VENDOR, overlay.kind, key, payload)
    cache = _cache(ctx.state)
    with cache.lock:
        cache.versions[overlay.kind] = cache.versions.get(overlay.kind, 0) + 1
