"""Rate limiters with each vendor's documented limits, so loaders meet real throttling.

Rules are named per vendor in `DEFAULT_LIMITS` and can be overridden per world through
`<world>/limits.json` or `PUT /_sandbox/limits` (tests lower them to trigger 429s quickly).
Limiter state is keyed by (vendor, rule, key), where key is what the vendor limits on (the
token, the shop, the account). Three kinds of rule:

- "window": at most `limit` requests per `seconds`; `mode` "sliding" (rolling window, the
  default) or "fixed" (counts reset when a window ends; Klaviyo documents fixed windows).
- "bucket": leaky bucket (Shopify REST): each request adds 1, the bucket leaks
  `leak_per_second`, a request that would overflow `capacity` is refused.
- "concurrency": at most `limit` requests in flight (Mailchimp); use `slot()`.

Every rule accepts `"enabled": false` to switch it off. A refused request calls
`on_violation(vendor)` (the state counts it in `counters.rate_limited`).
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

#: Vendor -> rule name -> parameters, with the numbers each vendor documents.
DEFAULT_LIMITS: dict[str, dict[str, dict[str, Any]]] = {
    # Raw Event Export: 60 queries per hour, 3 per second, 100 concurrent, per project.
    "mixpanel": {
        "export_hour": {"kind": "window", "limit": 60, "seconds": 3600},
        "export_second": {"kind": "window", "limit": 3, "seconds": 1},
        "export_concurrent": {"kind": "concurrency", "limit": 100},
    },
    # Private apps: 100 requests per 10 seconds (Free/Starter; 190 on Professional and
    # Enterprise); CRM search endpoints: 5 requests per second per token.
    "hubspot": {
        "burst": {"kind": "window", "limit": 100, "seconds": 10},
        "search": {"kind": "window", "limit": 5, "seconds": 1},
    },
    # Admin REST: leaky bucket of 40 requests leaking 2 per second per shop (standard plans).
    "shopify": {
        "rest": {"kind": "bucket", "capacity": 40, "leak_per_second": 2.0},
    },
    # Fixed windows per account, burst (1 s) and steady (1 min), by endpoint size:
    # XS 1/s 15/m, S 3/s 60/m, M 10/s 150/m, L 75/s 700/m, XL 350/s 3500/m.
    "klaviyo": {
        f"{window}_{size}": {"kind": "window", "limit": limit, "seconds": seconds, "mode": "fixed"}
        for size, burst, steady in (("xs", 1, 15), ("s", 3, 60), ("m", 10, 150), ("l", 75, 700), ("xl", 350, 3500))
        for window, limit, seconds in (("burst", burst, 1), ("steady", steady, 60))
    },
    # Marketing API v3: up to 10 simultaneous connections per API key.
    "mailchimp": {
        "connections": {"kind": "concurrency", "limit": 10},
    },
    # Instagram Platform calls fall under the Business Use Case limit, not the Graph API's
    # 200 per user per hour: calls within 24 hours = 4,800 x the account's impressions in the
    # last 24 hours. The sandbox's brand account is taken to be a small one, 1,000 a day.
    "instagram": {
        "calls": {"kind": "window", "limit": 4800 * 1000, "seconds": 24 * 3600},
    },
}

_KINDS = {
    "window": ("limit", "seconds"),
    "bucket": ("capacity", "leak_per_second"),
    "concurrency": ("limit",),
}


@dataclass(frozen=True)
class LimitInfo:
    """The limiter's state after a call, for the vendor's rate-limit headers."""

    rule: str
    limit: int  # requests per interval, bucket capacity, or simultaneous requests
    used: int  # requests counted in the window / bucket fill (rounded up) / in flight
    remaining: int  # limit - used, never negative
    interval_seconds: float  # window length; for a bucket, time to drain a full bucket
    reset_seconds: float  # until the window frees a slot / the bucket is empty


class Decision(NamedTuple):
    """`allowed, retry_after, info = limiter.hit(...)`."""

    allowed: bool
    retry_after: float  # seconds until a retry can succeed; 0 when allowed
    info: LimitInfo


def merge_limits(overrides: dict[str, Any] | None) -> dict[str, dict[str, dict[str, Any]]]:
    """Defaults with overrides merged per vendor and rule; validates every rule (ValueError)."""
    merged = copy.deepcopy(DEFAULT_LIMITS)
    for vendor, rules in (overrides or {}).items():
        if not isinstance(rules, dict):
            raise ValueError(f"limits for {vendor!r} must be an object of rules")
        for name, params in rules.items():
            if not isinstance(params, dict):
                raise ValueError(f"rule {vendor}.{name} must be an object")
            merged.setdefault(vendor, {}).setdefault(name, {}).update(params)
    for vendor, rules in merged.items():
        for name, params in rules.items():
            kind = params.get("kind")
            if kind not in _KINDS:
                raise ValueError(f"rule {vendor}.{name}: kind must be one of {sorted(_KINDS)}")
            for field in _KINDS[kind]:
                value = params.get(field)
                if not isinstance(value, int | float) or value <= 0:
                    raise ValueError(f"rule {vendor}.{name}: {field} must be a positive number")
            if params.get("mode", "sliding") not in ("sliding", "fixed"):
                raise ValueError(f"rule {vendor}.{name}: mode must be 'sliding' or 'fixed'")
    return merged


class RateLimiter:
    """All limiters of one server. One lock: checks are microseconds, so contention is moot,
    and a single lock makes multi-rule checks (burst + steady) atomic."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        on_violation: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._on_violation = on_violation or (lambda vendor: None)
        self._clock = clock
        self._lock = threading.RLock()  # re-entrant: an export slot may be released by a GC callback while held
        self._overrides: dict[str, Any] = {}
        if path is not None and path.exists():
            self._overrides = json.loads(path.read_text() or "{}")
        self._rules = merge_limits(self._overrides)
        self._state: dict[tuple[str, str, str], Any] = {}

    # -- configuration ------------------------------------------------------------------------

    def config(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The effective rules (defaults merged with overrides)."""
        with self._lock:
            return copy.deepcopy(self._rules)

    @property
    def overrides(self) -> dict[str, Any]:
        return copy.deepcopy(self._overrides)

    def configure(self, overrides: dict[str, Any] | None) -> None:
        """Replace the overrides (persisted to limits.json) and forget all limiter state."""
        rules = merge_limits(overrides)
        with self._lock:
            self._overrides = copy.deepcopy(overrides or {})
            self._rules = rules
            self._state.clear()
            if self._path is not None:
                from sandbox.server.state import write_json_atomic  # state imports this module

                write_json_atomic(self._path, self._overrides)

    def rule(self, vendor: str, name: str) -> dict[str, Any]:
        try:
            return self._rules[vendor][name]
        except KeyError:
            known = sorted(self._rules.get(vendor, {}))
            raise KeyError(f"no rate-limit rule {vendor}.{name}; known: {known}") from None

    # -- window and bucket --------------------------------------------------------------------

    def hit(self, vendor: str, rules: str | Sequence[str], key: str = "") -> Decision:
        """Count one request against one or more rules (e.g. Klaviyo ["burst_m", "steady_m"]).

        The request is counted only if every rule allows it. Refused: the decision carries the
        longest retry_after and the refusing rule's info. Allowed: the info of the rule with
        the fewest remaining requests (the one a client should watch)."""
        names = [rules] if isinstance(rules, str) else list(rules)
        with self._lock:
            now = self._clock()
            checks = [self._check(vendor, name, key, now) for name in names]
            refused = [c for c in checks if not c[0]]
            if refused:
                worst = max(refused, key=lambda c: c[1])
                decision = Decision(False, worst[1], worst[2](False))
            else:
                infos = [commit() for _, _, commit in checks]
                decision = Decision(True, 0.0, min(infos, key=lambda i: i.remaining))
        if not decision.allowed:
            self._on_violation(vendor)
        return decision

    def _check(self, vendor: str, name: str, key: str, now: float) -> tuple[bool, float, Callable[..., LimitInfo]]:
        """(allowed, retry_after, finish) where finish() records the hit and returns the info
        (called with False for a refused request: info without recording)."""
        params = self.rule(vendor, name)
        if params.get("enabled", True) is False:
            unlimited = LimitInfo(name, 0, 0, 0, 0.0, 0.0)
            return True, 0.0, lambda *_: unlimited
        kind = params["kind"]
        if kind == "window":
            return self._check_window(vendor, name, key, now, params)
        if kind == "bucket":
            return self._check_bucket(vendor, name, key, now, params)
        raise ValueError(f"rule {vendor}.{name} is a {kind} rule; use slot() for it")

    def _check_window(self, vendor: str, name: str, key: str, now: float, params: dict[str, Any]):
        limit, seconds = int(params["limit"]), float(params["seconds"])
        if params.get("mode", "sliding") == "fixed":
            start, count = self._state.get((vendor, name, key), (now, 0))
            if now - start >= seconds:
                start, count = now, 0
            reset = max(0.0, start + seconds - now)
            allowed = count < limit

            def finish(record: bool = True) -> LimitInfo:
                used = count + 1 if record else count
                if record:
                    self._state[(vendor, name, key)] = (start, used)
                return LimitInfo(name, limit, used, max(0, limit - used), seconds, reset)

            return allowed, 0.0 if allowed else reset, finish

        hits: deque[float] = self._state.setdefault((vendor, name, key), deque())
        while hits and hits[0] <= now - seconds:
            hits.popleft()
        allowed = len(hits) < limit
        retry = 0.0 if allowed else max(0.0, hits[0] + seconds - now)

        def finish_sliding(record: bool = True) -> LimitInfo:
            if record:
                hits.append(now)
            reset = max(0.0, hits[0] + seconds - now) if hits else 0.0
            return LimitInfo(name, limit, len(hits), max(0, limit - len(hits)), seconds, reset)

        return allowed, retry, finish_sliding

    def _check_bucket(self, vendor: str, name: str, key: str, now: float, params: dict[str, Any]):
        capacity, leak = float(params["capacity"]), float(params["leak_per_second"])
        fill, last = self._state.get((vendor, name, key), (0.0, now))
        fill = max(0.0, fill - (now - last) * leak)
        allowed = fill + 1 <= capacity
        retry = 0.0 if allowed else (fill + 1 - capacity) / leak

        def finish(record: bool = True) -> LimitInfo:
            level = fill + 1 if record else fill
            self._state[(vendor, name, key)] = (level, now)
            used = min(int(capacity), math.ceil(level - 1e-9))
            return LimitInfo(name, int(capacity), used, int(capacity) - used, capacity / leak, level / leak)

        return allowed, retry, finish

    def bucket_header(self, info: LimitInfo) -> str:
        """Shopify's `X-Shopify-Shop-Api-Call-Limit` value, e.g. "32/40"."""
        return f"{info.used}/{info.limit}"

    # -- concurrency --------------------------------------------------------------------------

    @contextmanager
    def slot(self, vendor: str, rule: str, key: str = "") -> Iterator[Decision]:
        """Hold one of a concurrency rule's slots for the duration of the block.

        `with state.limits.slot("mailchimp", "connections", api_key) as d:` then answer 429 if
        not d.allowed. The slot is released on exit only if it was acquired. A streamed
        response must hold the slot until the stream ends, not just while the handler runs."""
        params = self.rule(vendor, rule)
        if params["kind"] != "concurrency":
            raise ValueError(f"rule {vendor}.{rule} is not a concurrency rule")
        limit = int(params["limit"])
        enabled = params.get("enabled", True) is not False
        state_key = (vendor, rule, key)
        with self._lock:
            in_flight = self._state.get(state_key, 0)
            allowed = not enabled or in_flight < limit
            if allowed:
                in_flight += 1
                self._state[state_key] = in_flight
        info = LimitInfo(rule, limit, in_flight, max(0, limit - in_flight), 0.0, 0.0)
        if not allowed:
            self._on_violation(vendor)
            yield Decision(False, 1.0, info)
            return
        try:
            yield Decision(True, 0.0, info)
        finally:
            with self._lock:
                # configure() may have cleared state meanwhile; never go below zero
                self._state[state_key] = max(0, self._state.get(state_key, 0) - 1)
