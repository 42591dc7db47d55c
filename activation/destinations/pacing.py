"""Client-side pacing on a vendor's documented per-endpoint windows, so a push never earns a
rate-limit 429 by itself and still goes as fast as the windows allow.

A vendor such as Klaviyo counts each endpoint's requests in fixed windows (burst: 1 s, steady:
1 min) that start wherever its counter happens to start, and counts a request at some moment
between our sending it and our receiving its answer. So "at most N requests per W seconds by
our clock at sending time" is not enough: a request queued at the vendor can be counted later
than one sent after it. The rule kept here is safe whatever the latency or the window's
alignment: request n may be sent only once n - N + 1 of the requests before it (any of them)
were answered W seconds ago or more. Then of any N + 1 requests, the last one sent went W
seconds after the answer of another one, so the vendor counted those two more than W apart,
and no window can hold the N + 1. Counting any answers, not the oldest requests', matters:
a burst of N requests is answered in any order, and waiting for its slowest first answer
would add that answer's time to every round.

Every attempt takes a slot (a retry too): the vendor counts retries as well.
"""

from __future__ import annotations

import bisect
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
        self._answer_times: list[float] = []  # the same answer times, sorted
        self.waited_seconds = 0.0  # time callers spent waiting for a slot

    def _wait_needed(self, now: float) -> float | None:
        """Seconds until the next request may go; None when it waits for an answer first."""
        n = len(self._answered)
        wait = 0.0
        for window in self.windows:
            needed = n - window.limit + 1  # answers that must be W old before request n
            if needed <= 0:
                continue
            if needed > len(self._answer_times):
                return None
            wait = max(wait, self._answer_times[needed - 1] + window.seconds + _SLACK_SECONDS - now)
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
                answered = self.clock()
                self._answered[ticket] = answered
                bisect.insort(self._answer_times, answered)
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
