"""Mixpanel's Raw Event Export over HTTP: which day the project is on, which ranges to ask for,
and the streamed body cut into blocks of complete lines."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import date, timedelta

import requests

from ingestion.common.errors import RequestFailed, VendorError, setting
from ingestion.common.http import RetryPolicy, VendorSession, raise_for_status
from ingestion.common.pacing import MinIntervalPacer, Sleep
from ingestion.mixpanel.settings import EXPORT_PATH, QUERIES_PER_SECOND

VENDOR = "mixpanel"
# Mixpanel's answer to a `to_date` on a day that has not begun for the project (400).
FUTURE_DAY = "later than today"
_READ_BYTES = 1 << 20
# A body that breaks off mid-stream is a network failure, not an answer: export the range again.
_STREAM_ERRORS = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.ContentDecodingError,
    requests.exceptions.Timeout,
)

log = logging.getLogger("tessera.ingestion")


class FutureDayRefused(VendorError):
    def __init__(self, day: date) -> None:
        super().__init__(
            VENDOR,
            f"the export refused to_date={day.isoformat()} ({FUTURE_DAY!r}): that day has not begun for the "
            f"project. Set {setting(VENDOR, 'end_date')} to the run's logical date (yyyy-mm-dd), or leave it "
            "unset to export up to the latest day the project accepts",
        )


class ExportClient:
    """GET {base_url}/api/2.0/export with a service account, paced to the export's 3 queries/s."""

    def __init__(
        self,
        base_url: str,
        project_id: str,
        username: str,
        secret: str,
        policy: RetryPolicy | None = None,
        gzip: bool = True,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/{EXPORT_PATH}"
        self.project_id = str(project_id)
        self.policy = policy or RetryPolicy()
        self.session = VendorSession(VENDOR, "secret", self.policy, MinIntervalPacer(QUERIES_PER_SECOND, sleep), sleep)
        self.session.auth = (username, secret)
        # gzip saves most of the bytes over the internet; against a server on the same host,
        # identity is faster (decompressing costs more than the transfer).
        self.session.headers["Accept-Encoding"] = "gzip" if gzip else "identity"

    def _get(self, from_day: date, to_day: date, **extra: str) -> requests.Response:
        params = {"project_id": self.project_id, "from_date": from_day.isoformat(), "to_date": to_day.isoformat()}
        return self.session.get(self.url, params={**params, **extra}, stream=True)

    def accepts(self, day: date) -> bool:
        """Whether the project has begun `day` (a one-event query; it counts against the limits)."""
        with self._get(day, day, limit="1") as response:
            if _refused_as_future(response):
                return False
            raise_for_status(response, VENDOR)
            # Read the one line: a body dropped unread leaves the server a half-sent stream.
            _ = response.content
            return True

    def latest_day(self, today: date, earliest: date) -> date:
        """The latest day the export accepts as `to_date`, at most `today` (the wall clock's UTC
        date) and assumed at least `earliest`. One query when the project is on `today`;
        otherwise a binary search, so a clock weeks behind costs a handful of queries."""
        if self.accepts(today):
            return today
        good, bad = min(earliest, today - timedelta(days=1)), today
        probes = 1
        while (bad - good).days > 1:
            middle = good + timedelta(days=(bad - good).days // 2)
            probes += 1
            if self.accepts(middle):
                good = middle
            else:
                bad = middle
        log.warning(
            "%s: the project's today is %s, not the wall clock's %s (found in %d queries); set %s to the "
            "run's logical date to skip the search",
            VENDOR,
            good,
            today,
            probes,
            setting(VENDOR, "end_date"),
        )
        return good

    def export(self, from_day: date, to_day: date, block_bytes: int) -> Iterator[memoryview]:
        """The events of the UTC days from_day..to_day, in blocks of complete lines of about
        `block_bytes`. A stream that breaks off is exported again from the start (bounded by the
        retry policy): blocks already yielded come again, which the merge on insert id absorbs."""
        for attempt in range(1, self.policy.max_attempts + 1):
            received = 0
            try:
                with self._get(from_day, to_day) as response:
                    if _refused_as_future(response):
                        raise FutureDayRefused(to_day)
                    raise_for_status(response, VENDOR)
                    for block in _blocks(response.iter_content(chunk_size=_READ_BYTES), block_bytes):
                        received += len(block)
                        yield block
                return
            except _STREAM_ERRORS as exc:
                if attempt == self.policy.max_attempts:
                    raise RequestFailed(
                        VENDOR, "GET", self.url, None, attempt, f"the stream broke off: {type(exc).__name__}"
                    ) from None
                log.warning(
                    "%s: export %s..%s broke off after %d bytes (%s); exporting the range again",
                    VENDOR,
                    from_day,
                    to_day,
                    received,
                    type(exc).__name__,
                )


def _refused_as_future(response: requests.Response) -> bool:
    return response.status_code == 400 and FUTURE_DAY in response.text


def _blocks(chunks: Iterable[bytes], block_bytes: int) -> Iterator[memoryview]:
    """Re-cut a byte stream into blocks that end at a newline (the last one may not)."""
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size < block_bytes:
            continue
        data = b"".join(pending)
        cut = data.rfind(b"\n") + 1
        if cut == 0:  # one line longer than a block: keep reading
            pending, size = [data], len(data)
            continue
        yield memoryview(data)[:cut]
        pending = [data[cut:]]
        size = len(pending[0])
    if size:
        yield memoryview(b"".join(pending))


def plan_ranges(start: date, end: date, repair_days: Iterable[date], days_per_query: int) -> list[tuple[date, date]]:
    """The queries for a run: start..end, plus the earlier days to repair, as few ranges as
    possible (neighbouring days merge), none longer than `days_per_query`."""
    spans = sorted([(start, end), *((day, day) for day in repair_days if day < start)])
    merged: list[tuple[date, date]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1] + timedelta(days=1):
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    ranges: list[tuple[date, date]] = []
    step = timedelta(days=days_per_query)
    for lo, hi in merged:
        while lo <= hi:
            ranges.append((lo, min(hi, lo + step - timedelta(days=1))))
            lo += step
    return ranges
