"""Fault injection: the failures real vendor APIs produce, on demand and reproducibly.

Configuration lives in `<world>/faults.json` (all off by default) and is changed through
`PUT /_sandbox/faults`. Every decision is a hash of the fault seed and a position (a request
number, or a page key and record index), never a random generator, so a test that replays
the same requests sees the same faults.

Request-level faults (429, 500, slow) are applied by the server's gateway middleware to every
vendor path (never `/_sandbox/`) via `FaultInjector.decide_request`; the error body is the
vendor's own (`error_response` registered by its module).

Record-level faults are applied by vendor modules to each page they serve:
`state.faults.apply_record_faults(...)` for JSON pages, `state.faults.mangle_jsonl_line(...)`
for streamed JSONL.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

DRIFTS = (None, "added_field", "retyped_field")
#: Field that drift "added_field" adds to every record.
ADDED_FIELD = "sandbox_added_field"
#: Value a malformed record's timestamp gets: not parseable as a date by any parser.
BAD_TIMESTAMP = "not-a-timestamp"

_RATES = ("rate_429", "rate_500", "rate_slow", "rate_malformed", "rate_duplicate", "rate_reject", "rate_cancel_job")
_TIMESTAMP_NAMES = {"updated", "created", "timestamp", "datetime", "time", "last_changed", "updatedAt"}


@dataclass(frozen=True)
class FaultConfig:
    """What to inject. Rates are probabilities in [0, 1] (rate_429 + rate_500 <= 1)."""

    rate_429: float = 0.0  # answer 429 with the vendor's body and a Retry-After header
    rate_500: float = 0.0  # answer 500 with the vendor's body
    rate_slow: float = 0.0  # delay the response by slow_seconds (independent of 429/500)
    slow_seconds: float = 2.0
    rate_malformed: float = 0.0  # per record / JSONL line
    rate_duplicate: float = 0.0  # per record of the previous page / JSONL line
    rate_reject: float = 0.0  # per record of a destination write batch: the vendor's per-record error
    rate_cancel_job: float = 0.0  # per bulk job a destination submits: the vendor cancels it unrun
    drift: str | None = None  # None, "added_field" or "retyped_field"
    seed: int = 0
    retry_after_seconds: float = 1.0  # Retry-After sent with injected 429s
    vendors: tuple[str, ...] | None = None  # restrict faults to these vendors; None = all

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        """Validate a JSON body; missing fields take their defaults. Raises ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        for name in _RATES:
            if name in values:
                rate = float(values[name])
                if not 0.0 <= rate <= 1.0:
                    raise ValueError(f"{name} must be between 0 and 1, got {rate}")
                values[name] = rate
        for name in ("slow_seconds", "retry_after_seconds"):
            if name in values and float(values[name]) < 0:
                raise ValueError(f"{name} must be >= 0")
            if name in values:
                values[name] = float(values[name])
        if values.get("drift") not in DRIFTS:
            raise ValueError(f"drift must be one of {list(DRIFTS)}, got {values.get('drift')!r}")
        if "seed" in values:
            values["seed"] = int(values["seed"])
        if values.get("vendors") is not None:
            values["vendors"] = tuple(str(v) for v in values["vendors"])
        config = cls(**values)
        if config.rate_429 + config.rate_500 > 1.0:
            raise ValueError("rate_429 + rate_500 must be <= 1")
        return config

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["vendors"] = list(self.vendors) if self.vendors is not None else None
        return data

    @property
    def record_faults_on(self) -> bool:
        return self.rate_malformed > 0 or self.rate_duplicate > 0 or self.drift is not None


@dataclass(frozen=True)
class RequestFault:
    """The middleware's decision for one request."""

    status: int | None  # 429 or 500 to answer instead of the vendor, or None to serve normally
    delay: float  # seconds to wait first (slow fault), 0 if none
    retry_after: float | None  # Retry-After for a 429


def unit(seed: int, *parts: object) -> float:
    """A deterministic number in [0, 1) from the seed and the parts (the faults' only dice)."""
    text = "|".join([str(seed), *map(str, parts)])
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _get_path(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _set_path(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target = record
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def _candidate_paths(record: dict[str, Any]) -> list[tuple[str, Any]]:
    """(path, value) for top-level fields, then one level into nested objects (JSON:API
    `attributes`, HubSpot `properties`), in key order, so guesses are stable."""
    out = [(k, v) for k, v in record.items() if not isinstance(v, dict)]
    for k, v in record.items():
        if isinstance(v, dict):
            out += [(f"{k}.{k2}", v2) for k2, v2 in v.items() if not isinstance(v2, dict)]
    return out


def guess_timestamp_field(records: list[dict[str, Any]]) -> str | None:
    """First string field named like a timestamp (`*_at`, `*At`, updated, timestamp, ...)."""
    for record in records[:1]:
        for path, value in _candidate_paths(record):
            name = path.rsplit(".", 1)[-1]
            if isinstance(value, str) and (name.endswith("_at") or name.endswith("At") or name in _TIMESTAMP_NAMES):
                return path
    return None


def guess_numeric_field(records: list[dict[str, Any]], id_field: str) -> str | None:
    """First int/float (not bool) field that is not the primary key, from the first record
    that has one."""
    for record in records:
        for path, value in _candidate_paths(record):
            if path != id_field and isinstance(value, int | float) and not isinstance(value, bool):
                return path
    return None


class FaultInjector:
    """Holds the fault config (persisted to `faults.json`) and makes every fault decision."""

    def __init__(self, path: Path | None, on_fault: Callable[[str, str, int], None] | None = None) -> None:
        self._path = path
        self._on_fault = on_fault or (lambda vendor, kind, n: None)
        self._lock = threading.Lock()
        self._config = FaultConfig()
        if path is not None and path.exists():
            self._config = FaultConfig.from_dict(json.loads(path.read_text() or "{}"))
        self._request_seq: dict[str, int] = {}
        self._last_page: dict[tuple[str, str], tuple[str, list[dict[str, Any]]]] = {}
        self._reject_attempts: dict[tuple[str, str, str], int] = {}

    @property
    def config(self) -> FaultConfig:
        return self._config

    def set(self, config: FaultConfig) -> None:
        """Replace the config, persist it, and restart the request numbering and page memory
        so that the same requests after a `set` meet the same faults."""
        with self._lock:
            self._config = config
            self._request_seq.clear()
            self._last_page.clear()
            self._reject_attempts.clear()
            if self._path is not None:
                from sandbox.server.state import write_json_atomic  # state imports this module

                write_json_atomic(self._path, config.to_dict())

    def reset(self) -> None:
        """All faults off."""
        self.set(FaultConfig())

    def applies_to(self, vendor: str) -> bool:
        vendors = self._config.vendors
        return vendors is None or vendor in vendors

    # -- request level ------------------------------------------------------------------------

    def decide_request(self, vendor: str) -> RequestFault:
        """Decision for the vendor's next request: request n (per vendor, counted from the last
        `set`) gets 429 if unit(seed, "request", vendor, n) < rate_429, else 500 if it is below
        rate_429 + rate_500; it is slow if unit(seed, "slow", vendor, n) < rate_slow."""
        cfg = self._config
        if not self.applies_to(vendor) or (cfg.rate_429 == 0 and cfg.rate_500 == 0 and cfg.rate_slow == 0):
            return RequestFault(None, 0.0, None)
        with self._lock:
            n = self._request_seq.get(vendor, 0)
            self._request_seq[vendor] = n + 1
        status: int | None = None
        u = unit(cfg.seed, "request", vendor, n)
        if u < cfg.rate_429:
            status = 429
        elif u < cfg.rate_429 + cfg.rate_500:
            status = 500
        delay = cfg.slow_seconds if unit(cfg.seed, "slow", vendor, n) < cfg.rate_slow else 0.0
        if status:
            self._on_fault(vendor, str(status), 1)
        if delay:
            self._on_fault(vendor, "slow", 1)
        return RequestFault(status, delay, cfg.retry_after_seconds if status == 429 else None)

    # -- destination writes -------------------------------------------------------------------

    def reject_record(self, vendor: str, kind: str, key: str) -> bool:
        """Whether the vendor rejects one record of a write batch (a profile of a bulk import,
        a member of a batch subscribe), answering it with its per-record error while the rest
        of the batch succeeds. Attempt a of (vendor, kind, key), counted from the last `set`, is
        rejected when unit(seed, "reject", vendor, kind, key, a) < rate_reject: a record
        rejected once is decided afresh when it is sent again, so a retry can succeed."""
        cfg = self._config
        if cfg.rate_reject == 0 or not self.applies_to(vendor):
            return False
        with self._lock:
            attempt = self._reject_attempts.get((vendor, kind, key), 0)
            self._reject_attempts[(vendor, kind, key)] = attempt + 1
        rejected = unit(cfg.seed, "reject", vendor, kind, key, attempt) < cfg.rate_reject
        if rejected:
            self._on_fault(vendor, "reject", 1)
        return rejected

    def cancel_job(self, vendor: str, kind: str) -> bool:
        """Whether the vendor cancels a bulk job before running any of it (Klaviyo's job status
        `cancelled`). Job n of (vendor, kind), counted from the last `set`, is cancelled when
        unit(seed, "cancel", vendor, kind, n) < rate_cancel_job."""
        cfg = self._config
        if cfg.rate_cancel_job == 0 or not self.applies_to(vendor):
            return False
        with self._lock:
            n = self._reject_attempts.get((vendor, "cancel", kind), 0)
            self._reject_attempts[(vendor, "cancel", kind)] = n + 1
        cancelled = unit(cfg.seed, "cancel", vendor, kind, n) < cfg.rate_cancel_job
        if cancelled:
            self._on_fault(vendor, "cancel", 1)
        return cancelled

    # -- record level -------------------------------------------------------------------------

    def apply_record_faults(
        self,
        vendor: str,
        resource: str,
        records: list[dict[str, Any]],
        page_key: str,
        *,
        id_field: str = "id",
        timestamp_field: str | None = None,
        numeric_field: str | None = None,
    ) -> list[dict[str, Any]]:
        """Faults for one page of records, in this order; the input list is never mutated.

        - duplicate: each record of the previous page served for (vendor, resource) is
          repeated at the start of this page when unit(seed, "duplicate", vendor, resource,
          page_key, i) < rate_duplicate; as with offset paging over a table that grows, a
          loader sees the same record on two pages. The previous page is the last one served
          with a different page_key (pages are assumed to be read in sequence).
        - malformed: record i of the resulting page is corrupted when unit(seed, "malformed",
          vendor, resource, page_key, i) < rate_malformed: its timestamp (`timestamp_field`,
          a dotted path, or the first field named like one) becomes "not-a-timestamp" for about
          half of them, otherwise (or when there is no timestamp) its primary key `id_field`
          becomes null.
        - drift "added_field": every record gets `sandbox_added_field` (a string).
        - drift "retyped_field": `numeric_field` (a dotted path; default the first numeric
          non-key field) becomes its string form in every record, e.g. 3 -> "3".

        `page_key` identifies the page (e.g. the cursor or offset it was requested with).
        """
        cfg = self._config
        if not cfg.record_faults_on or not self.applies_to(vendor):
            return records
        seed = cfg.seed
        out = list(records)

        if cfg.rate_duplicate > 0:
            with self._lock:
                prev_key, prev = self._last_page.get((vendor, resource), (None, []))
                self._last_page[(vendor, resource)] = (page_key, list(records))
            if prev_key != page_key:
                dups = [
                    copy.deepcopy(r)
                    for i, r in enumerate(prev)
                    if unit(seed, "duplicate", vendor, resource, page_key, i) < cfg.rate_duplicate
                ]
                if dups:
                    self._on_fault(vendor, "duplicate", len(dups))
                out = dups + out

        if cfg.rate_malformed > 0:
            ts_field = timestamp_field or guess_timestamp_field(out)
            hit = 0
            for i, record in enumerate(out):
                if unit(seed, "malformed", vendor, resource, page_key, i) >= cfg.rate_malformed:
                    continue
                bad = copy.deepcopy(record)
                if ts_field and unit(seed, "malformed-kind", vendor, resource, page_key, i) < 0.5:
                    _set_path(bad, ts_field, BAD_TIMESTAMP)
                else:
                    _set_path(bad, id_field, None)
                out[i] = bad
                hit += 1
            if hit:
                self._on_fault(vendor, "malformed", hit)

        if cfg.drift == "added_field":
            out = [{**r, ADDED_FIELD: "sandbox drift"} for r in out]
        elif cfg.drift == "retyped_field":
            path = numeric_field or guess_numeric_field(out, id_field)
            if path:
                retyped = []
                for r in out:
                    value = _get_path(r, path)
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        r = copy.deepcopy(r)
                        _set_path(r, path, str(value))
                    retyped.append(r)
                out = retyped
        return out

    def mangle_jsonl_line(
        self, line: str, index: int, *, vendor: str = "mixpanel", stream_key: str = ""
    ) -> str | list[str]:
        """Faults for line `index` (0-based) of a JSONL stream; `line` has no trailing newline.

        Returns the line, or a list of lines to emit instead:
        - malformed (unit(seed, "jsonl-malformed", vendor, stream_key, index) < rate_malformed):
          the line cut in half, so it is not valid JSON;
        - duplicate (unit(seed, "jsonl-duplicate", ...) < rate_duplicate): the line twice;
        - drift "added_field": `sandbox_added_field` added inside `properties` (top level if the
          object has no `properties`); "retyped_field": `properties.time` becomes a string.
        `stream_key` identifies the stream (e.g. the requested date range).
        """
        cfg = self._config
        if not cfg.record_faults_on or not self.applies_to(vendor):
            return line
        if cfg.drift is not None:
            obj = json.loads(line)
            target = obj["properties"] if isinstance(obj.get("properties"), dict) else obj
            if cfg.drift == "added_field":
                target[ADDED_FIELD] = "sandbox drift"
            elif isinstance(target.get("time"), int | float):
                target["time"] = str(target["time"])
            line = json.dumps(obj, separators=(",", ":"))
        if unit(cfg.seed, "jsonl-malformed", vendor, stream_key, index) < cfg.rate_malformed:
            self._on_fault(vendor, "malformed", 1)
            return line[: max(1, len(line) // 2)]
        if unit(cfg.seed, "jsonl-duplicate", vendor, stream_key, index) < cfg.rate_duplicate:
            self._on_fault(vendor, "duplicate", 1)
            return [line, line]
        return line
