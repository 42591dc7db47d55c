"""Pacing from the vendors' own rate-limit headers, so a loader slows down before a 429.

Each pacer reads what the last response said about the remaining budget and, when it is
nearly spent, waits before the next request. A 429 still happens under contention and is
handled by the session's retry; pacing keeps it rare and keeps the vendor's counters clean.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

Sleep = Callable[[float], None]


class Pacer:
    """No pacing: the base class, and what vendors without budget headers use."""

    def __init__(self, sleep: Sleep = time.sleep) -> None:
        self.sleep = sleep
        self._wait = 0.0

    def before_request(self) -> None:
        if self._wait > 0:
            self.sleep(self._wait)
            self._wait = 0.0

    def after_response(self, response: requests.Response) -> None:
        self._wait = max(0.0, self.wait_after(response))

    def wait_after(self, response: requests.Response) -> float:
        return 0.0


class MinIntervalPacer(Pacer):
    """At most `per_second` requests per second (Mixpanel's export: 3/s)."""

    def __init__(self, per_second: float, sleep: Sleep = time.sleep, clock: Callable[[], float] = time.monotonic):
        super().__init__(sleep)
        self.interval = 1.0 / per_second
        self.clock = clock
        self._last: float | None = None

    def before_request(self) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            self.sleep(self.interval - (now - self._last))
        self._last = self.clock()


class ShopifyBucketPacer(Pacer):
    """`X-Shopify-Shop-Api-Call-Limit: 32/40`: wait for the bucket to drain near the top."""

    def __init__(self, leak_per_second: float = 2.0, headroom: int = 4, sleep: Sleep = time.sleep) -> None:
        super().__init__(sleep)
        self.leak = leak_per_second
        self.headroom = headroom

    def wait_after(self, response: requests.Response) -> float:
        value = response.headers.get("X-Shopify-Shop-Api-Call-Limit", "")
        used, _, capacity = value.partition("/")
        if not (used.isdigit() and capacity.isdigit()) or int(capacity) == 0:
            return 0.0  # no bucket reported
        excess = int(used) - (int(capacity) - self.headroom)
        return excess / self.leak if excess > 0 else 0.0


class RemainingPacer(Pacer):
    """Budget headers of the `remaining` + `window` kind (HubSpot, Klaviyo's RateLimit-*)."""

    def __init__(
        self,
        remaining: str,
        window_ms: str | None = None,
        reset_s: str | None = None,
        low: int = 1,
        sleep: Sleep = time.sleep,
    ) -> None:
        super().__init__(sleep)
        self.remaining, self.window_ms, self.reset_s, self.low = remaining, window_ms, reset_s, low

    def wait_after(self, response: requests.Response) -> float:
        remaining = response.headers.get(self.remaining)
        if remaining is None or not remaining.strip().lstrip("-").isdigit() or int(remaining) > self.low:
            return 0.0
        if self.reset_s and response.headers.get(self.reset_s, "").replace(".", "", 1).isdigit():
            return float(response.headers[self.reset_s])
        if self.window_ms and response.headers.get(self.window_ms, "").isdigit():
            return int(response.headers[self.window_ms]) / 1000
        return 1.0


class UsagePercentPacer(Pacer):
    """Meta's `X-App-Usage` / `X-Business-Use-Case-Usage` percentages (Instagram Graph)."""

    def __init__(self, threshold: float = 90.0, pause: float = 60.0, sleep: Sleep = time.sleep) -> None:
        super().__init__(sleep)
        self.threshold, self.pause = threshold, pause

    def wait_after(self, response: requests.Response) -> float:
        import json

        peak = 0.0
        for header in ("X-App-Usage", "X-Business-Use-Case-Usage"):
            raw = response.headers.get(header)
            if not raw:
                continue
            try:
                data = json.loads(raw)
            except ValueError:
                continue
            usages = [data] if header == "X-App-Usage" else [u for v in data.values() for u in v]
            for usage in usages:
                for key in ("call_count", "total_cputime", "total_time"):
                    peak = max(peak, float(usage.get(key, 0) or 0))
        return self.pause if peak >= self.threshold else 0.0
