"""Client-side pacing on a vendor's documented per-endpoint windows, so a push never earns a
rate-limit 429 by itself and still goes as fast as the windows allow.

A vendor such as Klaviyo counts each endpoint's requests in fixed windows (burst: 1 s, steady:
1 min) that start wherever its counter happens to start, and counts a request at some moment
between our sending it and our receiving its answer. So "at most N requests per W seconds by
our clock at sending time" is not enough: a request queued at the vendor can be counted later
than one sent after it. The rule kept here is safe whatever the latency or the window's
alignment: request n may be sent only once every request up to n - N has been answered and W
seconds have passed since the last of those answers. Then any N + 1 requests span more than W
seconds as the vendor counts them, so no window can hold N + 1 of them.

Every attempt takes a slot (a retry too): the vendor counts retries as well.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

Clock = Callable[[], float]

#: Slack added to every window for clock granularity between us and the vendor.
_SLACK_SECONDS = 0.005


@dataclass(frozen=True)
class Window:
    """At most `limit` requests in any `seconds`-long window."""

    limit: int
    seconds: float


class WindowLimiter:
    """One endpoint's windows, shared by every thread that calls the endpoint."""

    def __init__(self, windows: Sequence[Window], clock: Clock = time.monotonic) -> None:
        self.windows = tuple(windows)
        self.clock = clock
        self._cond = threading.Condition()
        self._answered: list[float | None] = []  # answer time per request, in sending order
        self._settled_max: list[float] = []  # max answer time over requests 0..i, all answered
        self.waited_seconds = 0.0  # time callers spent waiting for a slot

    def _wait_needed(self, now: float) -> float | None:
        """Seconds until the next request may go; None when an earlier answer is still due."""
        n = len(self._answered)
        wait = 0.0
        for window in self.windows:
            k = n - window.limit  # the request that must be answered, and W old, first
            if k < 0:
                continue
            if k >= len(self._settled_max):
                return None
            wait = max(wait, self._settled_max[k] + window.seconds + _SLACK_SECONDS - now)
        return wait

    def acquire(self) -> int:
        """Block until a request may be sent; returns its ticket for `release`."""
        started = self.clock()
        with self._cond:
            while True:
                wait = self._wait_needed(self.clock())
                if wait is not None and wait <= 0:
                    self._answered.append(None)
                    self.waited_seconds += self.clock() - started
                    return len(self._answered) - 1
                self._cond.wait(timeout=wait)

    def release(self, ticket: int) -> None:
        """The request's answer arrived (or it failed without one)."""
        with self._cond:
            if self._answered[ticket] is None:
                self._answered[ticket] = self.clock()
            while len(self._settled_max) < len(self._answered):
                answered = self._answered[len(self._settled_max)]
                if answered is None:
                    break
                previous = self._settled_max[-1] if self._settled_max else answered
                self._settled_max.append(max(previous, answered))
            self._cond.notify_all()

    @property
    def sent(self) -> int:
        """Requests sent through this limiter so far (every attempt)."""
        with self._cond:
            return len(self._answered)

    @contextmanager
    def slot(self) -> Iterator[int]:
        ticket = self.acquire()
        try:
            yield ticket
        finally:
            self.release(ticket)


class EndpointLimiters:
    """A limiter per endpoint name, each with its tier's windows."""

    def __init__(self, tiers: dict[str, Sequence[Window]], clock: Clock = time.monotonic) -> None:
        self._limiters = {name: WindowLimiter(windows, clock) for name, windows in tiers.items()}

    def __getitem__(self, endpoint: str) -> WindowLimiter:
        return self._limiters[endpoint]

    def sent(self) -> dict[str, int]:
        """Requests sent per endpoint (endpoints never called are left out)."""
        return {name: limiter.sent for name, limiter in self._limiters.items() if limiter.sent}

    def windows(self, endpoint: str) -> tuple[Window, ...]:
        return self._limiters[endpoint].windows

    def waited_seconds(self) -> float:
        return sum(limiter.waited_seconds for limiter in self._limiters.values())


def earliest_start(index: int, windows: Sequence[Window]) -> float:
    """The earliest moment (seconds after the first request) request `index` (0-based) of one
    endpoint can be sent under these fixed windows, with every window starting at the first
    request and requests answered instantly: the floor any client meets."""
    start = 0.0
    for window in windows:
        start = max(start, (index // window.limit) * window.seconds)
    return start
