"""Everything a vendor module needs about one served world.

`SandboxState` is built once per server from a world directory and handed to every vendor
module's `mount(state)`. It owns:

- the world metadata (`world.json`) and the world clock, persisted on change;
- one in-memory DuckDB database in which every `store/<table>.parquet` is a view named
  `<table>`; `db()` gives each thread its own cursor because a DuckDB cursor must not be shared
  between threads;
- the destinations store (`destinations.sqlite`): what push clients wrote to the sandbox;
- the counters (`counters.json`): requests, statuses, rate-limit refusals, writes, faults;
- fault injection (`state.faults`) and rate limiters (`state.limits`);
- the vendors' error-response registry, so sandbox-made 429/500s have each vendor's shape.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
from starlette.responses import JSONResponse, Response

from sandbox.server.faults import FaultInjector
from sandbox.server.ratelimit import RateLimiter

log = logging.getLogger(__name__)

#: `error_response(status, retry_after_seconds) -> Response` in the vendor's own error shape.
ErrorResponder = Callable[[int, float | None], Response]


class ClockError(ValueError):
    """The requested clock move is not allowed (for example past the world's horizon)."""


def parse_ts(value: str | datetime) -> datetime:
    """Parse an ISO-8601 timestamp (a trailing `Z` allowed) into a tz-aware UTC datetime."""
    ts = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    if ts.tzinfo is None:  # world files are UTC by contract; treat naive values as UTC
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def format_ts(ts: datetime) -> str:
    """Format a datetime as ISO-8601 UTC with a `Z` suffix (the form world.json uses)."""
    return parse_ts(ts).isoformat().replace("+00:00", "Z")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file and rename, so a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def strip_hidden(row: dict[str, Any]) -> dict[str, Any]:
    """Drop ground-truth columns (names starting with `_`); they must never be served."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


_WRITER_IDLE_SECONDS = 5.0  # a deferred-writes thread with nothing to do for this long exits

_GC_PAUSE_LOCK = threading.Lock()
_gc_pauses = 0  # handlers inside `collection_paused` now
_gc_resume = False  # whether the last one out turns the collector back on


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Run a bulk write without the cyclic garbage collector. A bulk body parses into
    hundreds of thousands of containers that live as long as the request: every young
    collection meanwhile walks them all (over a second of a 100k-profile push), and they die
    by reference count when it ends, so a collection afterwards only meets what the request
    kept. Nests across threads; the collector stays off if something else turned it off."""
    global _gc_pauses, _gc_resume
    with _GC_PAUSE_LOCK:
        if _gc_pauses == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _GC_PAUSE_LOCK:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_resume:
                gc.enable()


# --------------------------------------------------------------------------------------------
# Counters
# --------------------------------------------------------------------------------------------

_SECTIONS = ("requests", "responses", "rate_limited", "writes", "faults")


class Counters:
    """Thread-safe request/write counters, persisted to `counters.json`.

    Sections of `snapshot()`:
      requests     {vendor: n}                  every request to a vendor path
      responses    {vendor: {status: n}}        final status per vendor (status as a string)
      rate_limited {vendor: n}                  requests refused by a sandbox rate limiter
      writes       {vendor: {kind: n}}          writes received by destinations (`record()`)
      faults       {vendor: {kind: n}}          injected faults (429, 500, slow, malformed, ...)

    The file is rewritten at most once per `flush_interval` seconds while counting (the server
    can take thousands of requests a second), and always on `snapshot()` and `flush()`.
    """

    def __init__(self, path: Path, flush_interval: float = 1.0) -> None:
        self._path = path
        self._interval = flush_interval
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] = {s: {} for s in _SECTIONS}
        self._dirty = False
        self._last_flush = 0.0
        if path.exists():
            loaded = json.loads(path.read_text() or "{}")
            for section in _SECTIONS:
                self._data[section] = dict(loaded.get(section, {}))

    def _bump(self, section: str, vendor: str, sub: str | None = None, n: int = 1) -> None:
        with self._lock:
            table = self._data[section]
            if sub is None:
                table[vendor] = table.get(vendor, 0) + n
            else:
                inner = table.setdefault(vendor, {})
                inner[sub] = inner.get(sub, 0) + n
            self._dirty = True
            if time.monotonic() - self._last_flush >= self._interval:
                self._flush_locked()

    def request(self, vendor: str) -> None:
        self._bump("requests", vendor)

    def response(self, vendor: str, status: int) -> None:
        self._bump("responses", vendor, str(status))

    def rate_limited(self, vendor: str) -> None:
        self._bump("rate_limited", vendor)

    def write(self, vendor: str, kind: str, n: int = 1) -> None:
        self._bump("writes", vendor, kind, n)

    def fault(self, vendor: str, kind: str, n: int = 1) -> None:
        self._bump("faults", vendor, kind, n)

    def _flush_locked(self) -> None:
        write_json_atomic(self._path, self._data)
        self._dirty = False
        self._last_flush = time.monotonic()

    def flush(self) -> None:
        """Write the counters now if anything changed since the last write."""
        with self._lock:
            if self._dirty:
                self._flush_locked()

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of all counters (and a flush, so the file matches what was read)."""
        with self._lock:
            if self._dirty:
                self._flush_locked()
            return json.loads(json.dumps(self._data))

    def reset(self) -> None:
        with self._lock:
            self._data = {s: {} for s in _SECTIONS}
            self._flush_locked()


# --------------------------------------------------------------------------------------------
# Destinations
# --------------------------------------------------------------------------------------------

#: Generations of destination objects (`DestinationStore.generation`), unique across stores.
_GENERATION = itertools.count(1)


@dataclass(frozen=True)
class StoredObject:
    """One object a destination holds (a list, a list member, a tag, a profile, ...)."""

    vendor: str
    kind: str
    key: str
    payload: dict[str, Any]
    created_at: str  # world clock (ISO UTC) when first stored
    updated_at: str  # world clock (ISO UTC) when last stored


_DDL = """
CREATE TABLE IF NOT EXISTS objects (
    vendor TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, payload_json TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (vendor, kind, key)
);
CREATE TABLE IF NOT EXISTS received (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    vendor TEXT NOT NULL, kind TEXT NOT NULL, key TEXT, payload_json TEXT NOT NULL,
    received_at TEXT NOT NULL,  -- world clock
    wall_time TEXT NOT NULL     -- real time, to order and debug pushes within one world instant
);
CREATE INDEX IF NOT EXISTS received_vendor_kind ON received (vendor, kind);
"""


class DestinationStore:
    """What the email platforms (and any other vendor) received from push clients.

    Two generic tables in `<world>/destinations.sqlite` (it survives a server restart):
    - `objects`: current state, one row per (vendor, kind, key); `upsert/get/list_objects/delete`.
      Vendors choose kinds and keys, e.g. kind "list" key list_id, kind "list_member" key
      f"{list_id}:{profile_id}", kind "tag" key f"{audience}:{member}:{tag}".
    - `received`: append-only log of every write, via `record()`, which also counts a write.
    A vendor handler typically calls `record()` once per write it accepts and `upsert()` or
    `delete()` to change the state its read endpoints serve.

    One SQLite connection per thread (WAL, so readers never block the writer); writes are
    serialized by a lock because read-modify-write upserts must not interleave.
    """

    def __init__(self, path: Path, now: Callable[[], datetime], counters: Counters) -> None:
        self._path = path
        self._now = now
        self._counters = counters
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        # Writes handed to `write_behind` and `record`, applied in order by one writer thread.
        self._pending: deque[tuple[tuple[str, str], Callable[[sqlite3.Connection], None]]] = deque()
        self._pending_cond = threading.Condition()
        self._unwritten: Counter[tuple[str, str]] = Counter()  # (vendor, kind) -> writes not yet in the file
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
        self._closing = False  # set by close(): the writer exits as soon as nothing is pending
        self._generations: dict[tuple[str, str], int] = {}
        self._generations_lock = threading.Lock()
        with self._write_lock:
            self._conn().executescript(_DDL)

    def generation(self, vendor: str, kind: str) -> int:
        """A number that changes each time objects of this kind are written or deleted, so a
        value read from them can be kept until it does (unique across stores)."""
        with self._generations_lock:
            return self._generations.get((vendor, kind), 0)

    def _changed(self, vendor: str, kind: str) -> None:
        # Called once the write is visible to readers (committed, or queued ahead of any read
        # that settles): a reader that saw the old number re-reads, one that saw the new sees it.
        with self._generations_lock:
            self._generations[(vendor, kind)] = next(_GENERATION)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def _close_thread_connection(self) -> None:
        """Close this thread's connection: a thread that ends must not leave it open until close()."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._all_lock:
            if conn in self._all:
                self._all.remove(conn)
        conn.close()

    def _stamp(self) -> str:
        return format_ts(self._now())

    # -- writes behind ----------------------------------------------------------------------

    def _enqueue(self, what: tuple[str, str], write: Callable[[sqlite3.Connection], None]) -> None:
        with self._pending_cond:
            self._pending.append((what, write))
            self._unwritten[what] += 1
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_pending, name="destinations-writer", daemon=True)
                self._writer.start()
            self._pending_cond.notify_all()

    def _write_pending(self) -> None:
        while True:
            with self._pending_cond:
                if not self._pending and not self._closing:
                    self._pending_cond.wait(timeout=_WRITER_IDLE_SECONDS)
                if not self._pending:  # idle: exit rather than outlive the server; _enqueue starts another
                    self._writer = None
                    self._close_thread_connection()
                    return
                what, write = self._pending.popleft()
            try:
                with self._write_lock:
                    write(self._conn())
            except BaseException as exc:  # kept for the next caller of settle(), which raises it
                log.exception("a deferred write to the destinations store failed")
                self._writer_error = exc
            finally:
                with self._pending_cond:
                    self._unwritten[what] -= 1
                    if not self._unwritten[what]:
                        del self._unwritten[what]
                    self._pending_cond.notify_all()

    def settle(self, vendor: str | None = None, kind: str | None = None) -> None:
        """Wait until every write handed to `write_behind` or `record` (or only those of one
        vendor's kind) is in the file. Every read and every synchronous write settles its
        kind first, so nothing reads around a pending write and the order of writes is kept;
        a read of one kind does not wait for another's (a bulk job's thousands of rows)."""
        with self._pending_cond:
            while self._unwritten if kind is None else self._unwritten[(vendor or "", kind)]:
                self._pending_cond.wait()
            error, self._writer_error = self._writer_error, None
        if error is not None:
            raise RuntimeError("a deferred write to the destinations store failed") from error

    def write_behind(self, vendor: str, kind: str, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """Store objects whose outcome the caller already knows, (key, payload JSON,
        created_at, updated_at) each, without waiting for the file: a bulk job writes
        tens of thousands of them, and SQLite's work (which runs without the GIL) then
        overlaps with the requests that follow instead of delaying the answer."""
        if not rows:
            return
        params = [(vendor, kind, key, body, created, updated) for key, body, created, updated in rows]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT INTO objects (vendor, kind, key, payload_json, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (vendor, kind, key) DO UPDATE SET"
                    " payload_json=excluded.payload_json, updated_at=excluded.updated_at",
                    params,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        self._enqueue((vendor, kind), write)
        self._changed(vendor, kind)

    def record(self, vendor: str, kind: str, key: str | None, payload: dict[str, Any] | bytes) -> None:
        """Append one received write to the log and count it in `counters.writes[vendor][kind]`.

        `payload` may be the request's own JSON bytes: a bulk job's body is several MB, and
        encoding the parsed copy again cost more than applying the job."""
        body = payload.decode() if isinstance(payload, bytes) else json.dumps(payload, default=str)
        row = (vendor, kind, key, body, self._stamp(), format_ts(datetime.now(UTC)))
        self._enqueue(
            ("", "received"),
            lambda conn: conn.execute(
                "INSERT INTO received (vendor, kind, key, payload_json, received_at, wall_time)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                row,
            ),
        )
        self._counters.write(vendor, kind)

    def upsert(
        self, vendor: str, kind: str, key: str, payload: dict[str, Any], *, merge: bool = False
    ) -> tuple[StoredObject, bool]:
        """Store an object; with `merge=True` the payload's keys update the stored payload.

        Returns (stored object, created) where created is True when the key was new.
        """
        self.settle(vendor, kind)
        now = self._stamp()
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = conn.execute(
                    "SELECT payload_json, created_at FROM objects WHERE vendor=? AND kind=? AND key=?",
                    (vendor, kind, key),
                ).fetchall()
                created = not rows
                body = dict(payload)
                created_at = now
                if rows:
                    created_at = rows[0][1]
                    if merge:
                        body = {**json.loads(rows[0][0]), **payload}
                conn.execute(
                    "INSERT INTO objects (vendor, kind, key, payload_json, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (vendor, kind, key) DO UPDATE SET"
                    " payload_json=excluded.payload_json, updated_at=excluded.updated_at",
                    (vendor, kind, key, json.dumps(body, default=str), created_at, now),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._changed(vendor, kind)
        return StoredObject(vendor, kind, key, body, created_at, now), created

    def upsert_many(
        self, vendor: str, kind: str, items: Sequence[tuple[str, dict[str, Any]]], *, keep_existing: bool = False
    ) -> list[tuple[StoredObject, bool]]:
        """Store many objects of one kind in one transaction (a bulk job writes thousands; one
        commit each would cost more than the work). Later items win over earlier ones with the
        same key. With `keep_existing=True` a key already stored is left alone (insert-only,
        e.g. de-duplicated events). Returns (stored object, created) per item, in order."""
        self.settle(vendor, kind)
        now = self._stamp()
        out: list[tuple[StoredObject, bool]] = []
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                keys = list(dict.fromkeys(key for key, _ in items))
                existing: dict[str, tuple[str, str, str]] = {}
                # The stored payload is only needed to answer for a key that is kept as it was.
                payload_column = "payload_json" if keep_existing else "''"
                for start in range(0, len(keys), 500):
                    chunk = keys[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    for key, payload_json, created_at, updated_at in conn.execute(
                        f"SELECT key, {payload_column}, created_at, updated_at FROM objects"
                        f" WHERE vendor=? AND kind=? AND key IN ({marks})",
                        (vendor, kind, *chunk),
                    ).fetchall():
                        existing[key] = (payload_json, created_at, updated_at)
                rows = []
                for key, payload in items:
                    known = existing.get(key)
                    if known is not None and keep_existing:
                        out.append((StoredObject(vendor, kind, key, orjson.loads(known[0]), known[1], known[2]), False))
                        continue
                    created_at = known[1] if known is not None else now
                    body = orjson.dumps(payload, default=str).decode()
                    existing[key] = (body, created_at, now)
                    rows.append((vendor, kind, key, body, created_at, now))
                    out.append((StoredObject(vendor, kind, key, payload, created_at, now), known is None))
                conn.executemany(
                    "INSERT INTO objects (vendor, kind, key, payload_json, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (vendor, kind, key) DO UPDATE SET"
                    " payload_json=excluded.payload_json, updated_at=excluded.updated_at",
                    rows,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._changed(vendor, kind)
        return out

    def get(self, vendor: str, kind: str, key: str) -> StoredObject | None:
        self.settle(vendor, kind)
        rows = (
            self._conn()
            .execute(
                "SELECT payload_json, created_at, updated_at FROM objects WHERE vendor=? AND kind=? AND key=?",
                (vendor, kind, key),
            )
            .fetchall()
        )
        if not rows:
            return None
        return StoredObject(vendor, kind, key, json.loads(rows[0][0]), rows[0][1], rows[0][2])

    def list_objects(
        self,
        vendor: str,
        kind: str,
        *,
        key_prefix: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[StoredObject]:
        """Objects of one kind in insertion order (stable, so vendors can page with offsets)."""
        self.settle(vendor, kind)
        sql = "SELECT key, payload_json, created_at, updated_at FROM objects WHERE vendor=? AND kind=?"
        params: list[Any] = [vendor, kind]
        if key_prefix is not None:
            sql += " AND substr(key, 1, ?) = ?"
            params += [len(key_prefix), key_prefix]
        sql += " ORDER BY rowid LIMIT ? OFFSET ?"
        params += [-1 if limit is None else limit, offset]
        rows = self._conn().execute(sql, params).fetchall()
        return [StoredObject(vendor, kind, k, json.loads(p), c, u) for k, p, c, u in rows]

    def count(self, vendor: str, kind: str, *, key_prefix: str | None = None) -> int:
        self.settle(vendor, kind)
        sql = "SELECT count(*) FROM objects WHERE vendor=? AND kind=?"
        params: list[Any] = [vendor, kind]
        if key_prefix is not None:
            sql += " AND substr(key, 1, ?) = ?"
            params += [len(key_prefix), key_prefix]
        return int(self._conn().execute(sql, params).fetchall()[0][0])

    def delete(self, vendor: str, kind: str, key: str) -> bool:
        """Delete one object; True if it existed."""
        self.settle(vendor, kind)
        with self._write_lock:
            cur = self._conn().execute("DELETE FROM objects WHERE vendor=? AND kind=? AND key=?", (vendor, kind, key))
        self._changed(vendor, kind)
        return cur.rowcount > 0

    def received(
        self, vendor: str | None = None, kind: str | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The received log, oldest first, optionally filtered by vendor and kind."""
        self.settle("", "received")
        sql = "SELECT id, vendor, kind, key, payload_json, received_at, wall_time FROM received WHERE 1=1"
        params: list[Any] = []
        if vendor is not None:
            sql += " AND vendor=?"
            params.append(vendor)
        if kind is not None:
            sql += " AND kind=?"
            params.append(kind)
        sql += " ORDER BY id LIMIT ?"
        params.append(-1 if limit is None else limit)
        return [
            {"id": i, "vendor": v, "kind": k, "key": key, "payload": json.loads(p), "received_at": r, "wall_time": w}
            for i, v, k, key, p, r, w in self._conn().execute(sql, params).fetchall()
        ]

    def close(self) -> None:
        """Close every thread's connection; the store reopens lazily if used again."""
        self.settle()
        # Wake the idle writer so it exits now rather than after _WRITER_IDLE_SECONDS: a daemon
        # thread still alive at interpreter exit keeps its frames' objects (this store, and
        # through `now` the whole SandboxState with its DuckDB connection) from ever being freed.
        with self._pending_cond:
            writer, self._closing = self._writer, True
            self._pending_cond.notify_all()
        if writer is not None and writer is not threading.current_thread():
            writer.join()
        with self._pending_cond:
            self._closing = False
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
            self._local = threading.local()


# --------------------------------------------------------------------------------------------
# The state
# --------------------------------------------------------------------------------------------


def default_error_response(status: int, retry_after: float | None) -> Response:
    """Fallback error shape for vendors that did not register their own."""
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else {}
    return JSONResponse({"status": status, "message": "sandbox error"}, status_code=status, headers=headers)


class SandboxState:
    """One served world. Thread-safe; vendor handlers share a single instance."""

    def __init__(self, world_dir: Path | str, *, limiter_clock: Callable[[], float] = time.monotonic) -> None:
        self.world_dir = Path(world_dir)
        self._world_json = self.world_dir / "world.json"
        self.meta: dict[str, Any] = json.loads(self._world_json.read_text())
        self._clock_lock = threading.Lock()
        self._clock = parse_ts(self.meta["clock"])
        #: Serializes clock moves and truth rewrites (the control endpoint holds it).
        self.advance_lock = threading.Lock()

        self.counters = Counters(self.world_dir / "counters.json")
        self.destinations = DestinationStore(self.world_dir / "destinations.sqlite", lambda: self.clock, self.counters)
        self.faults = FaultInjector(self.world_dir / "faults.json", on_fault=self.counters.fault)
        self.limits = RateLimiter(
            self.world_dir / "limits.json", on_violation=self.counters.rate_limited, clock=limiter_clock
        )
        self.error_responses: dict[str, ErrorResponder] = {}
        #: Vendor names whose module is mounted (filled in by `create_app`).
        self.vendors: list[str] = []

        self._duck = duckdb.connect(":memory:")
        # Casts and date parts of TIMESTAMPTZ follow the session zone: pin UTC so what vendors
        # render does not depend on the machine's time zone. GLOBAL reaches every cursor.
        self._duck.execute("SET GLOBAL TimeZone = 'UTC'").fetchall()
        # DuckDB's buffer pool would otherwise keep scanned pages up to 80% of RAM: a streamed
        # export of a large world must not grow the server by the size of what it streamed.
        self._duck.execute("SET GLOBAL memory_limit = '1GB'").fetchall()
        self._duck_local = threading.local()
        # Every per-thread cursor, so close() can close them on the thread that shuts down:
        # left to the worker threads' teardown at interpreter exit, DuckDB can abort the process.
        self._thread_cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self.tables: list[str] = self._register_store()

    # -- world metadata ----------------------------------------------------------------------

    @property
    def seed(self) -> int:
        return int(self.meta.get("seed", 0))

    @property
    def start(self) -> datetime:
        return parse_ts(self.meta["start"])

    @property
    def horizon(self) -> datetime:
        """Last instant with generated data; the clock may not move past it."""
        return parse_ts(self.meta["horizon"])

    def credentials(self, vendor: str) -> dict[str, Any]:
        """The credentials world.json issues for a vendor (empty dict if none)."""
        return dict(self.meta.get("credentials", {}).get(vendor, {}))

    # -- clock ----------------------------------------------------------------------------------

    @property
    def clock(self) -> datetime:
        """The world's "now" (tz-aware UTC). Rows stamped after it are invisible to vendors."""
        with self._clock_lock:
            return self._clock

    @clock.setter
    def clock(self, value: datetime) -> None:
        value = parse_ts(value)
        with self._clock_lock:
            self._clock = value
            self.meta["clock"] = format_ts(value)
            write_json_atomic(self._world_json, self.meta)

    def advance(self, days: float = 1) -> datetime:
        """Move the clock forward; raises ClockError past the horizon or for days <= 0."""
        if days <= 0:
            raise ClockError(f"days must be positive, got {days}")
        new = self.clock + timedelta(days=days)
        if new > self.horizon:
            raise ClockError(
                f"cannot advance {days} day(s): the clock would be {format_ts(new)}, past the world's "
                f"horizon {format_ts(self.horizon)}, the last instant with generated data; "
                "generate a world whose horizon reaches further"
            )
        self.clock = new
        return new

    # -- DuckDB ---------------------------------------------------------------------------------

    def _register_store(self) -> list[str]:
        store = self.world_dir / "store"
        tables: list[str] = []
        if not store.is_dir():
            log.warning("world %s has no store/ directory", self.world_dir)
            return tables
        for path in sorted(store.iterdir()):
            if path.suffix == ".parquet" and path.is_file():
                source = str(path)
            elif path.is_dir() and any(path.glob("*.parquet")):  # a table written in parts
                source = str(path / "*.parquet")
            else:
                continue
            name = path.stem if path.is_file() else path.name
            quoted = source.replace("'", "''")
            self._duck.execute(f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{quoted}')")
            tables.append(name)
        return tables

    def db(self) -> duckdb.DuckDBPyConnection:
        """This thread's DuckDB cursor over the world's views. Always finish a result with
        `fetchall()` (or use `.sql(...).to_arrow_table()`); never `fetchone()` (duckdb 2.0).
        Use `cursor()` instead when a result outlives the call (streaming responses)."""
        cur = getattr(self._duck_local, "cursor", None)
        if cur is None:
            cur = self._duck.cursor()
            self._duck_local.cursor = cur
            with self._cursors_lock:
                self._thread_cursors.append(cur)
        return cur

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor the caller owns and closes: for results consumed across threads, e.g. a
        generator behind a StreamingResponse (each chunk may run on a different thread)."""
        return self._duck.cursor()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a query on this thread's cursor and return rows as dicts (hidden columns kept;
        pass rows through `strip_hidden` or select explicit columns before serving)."""
        cur = self.db().execute(sql, list(params))
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def columns(self, table: str) -> list[str]:
        """Public (servable) column names of a store table, in file order."""
        rows = self.db().execute(f'DESCRIBE "{table}"').fetchall()
        return [r[0] for r in rows if not r[0].startswith("_")]

    # -- errors and lifecycle -----------------------------------------------------------------

    def register_error_response(self, vendor: str, responder: ErrorResponder) -> None:
        self.error_responses[vendor] = responder

    def error_response(self, vendor: str, status: int, retry_after: float | None = None) -> Response:
        """An error in the vendor's own shape (its registered `error_response`)."""
        return self.error_responses.get(vendor, default_error_response)(status, retry_after)

    def close(self) -> None:
        """Flush counters, close DuckDB cursors and SQLite connections (safe to call twice)."""
        self.counters.flush()
        self.destinations.close()
        with self._cursors_lock:
            cursors, self._thread_cursors = self._thread_cursors, []
        for cur in cursors:
            with contextlib.suppress(duckdb.Error):
                cur.close()
        # The connection too: one still open at interpreter exit is reported by DuckDB's bindings
        # as a wall of "leaked instance" lines on the terminal of whoever ran the server.
        with contextlib.suppress(duckdb.Error):
            self._duck.close()
