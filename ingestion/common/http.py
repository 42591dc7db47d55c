"""A requests session that retries what a retry can fix, and fails clearly on what it cannot.

- 429 and 5xx: retried with exponential backoff and jitter, waiting at least what the
  vendor's `Retry-After` asks (seconds, fractional seconds or an HTTP date), up to a bounded
  number of attempts; then `RequestFailed`. dlt's own retry ignores fractional Retry-After
  values such as Shopify's "2.0", which is why sources use this session.
- Timeouts and dropped connections, before or in the middle of the body: retried the same way.
- Connection refused or an unknown host: `VendorUnreachable` at once (a wrong base URL does
  not get better by waiting).
- 401/403: `CredentialRejected` at once, naming the setting to fix.
- Anything else requests raises (a header or URL it refuses, too many redirects):
  `RequestNotSent` at once, without requests' own text, which quotes the refused header (an
  Authorization key with a trailing line break) or URL whole.
The pacer reads the vendor's budget headers and slows down before the vendor says 429.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass

import requests

from ingestion.common.errors import (
    CredentialRejected,
    RequestFailed,
    RequestNotSent,
    VendorUnreachable,
    redact_url,
    setting,
)
from ingestion.common.pacing import Pacer, Sleep

log = logging.getLogger("tessera.ingestion")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    backoff_base: float = 0.5  # seconds before the second attempt; doubles each time
    backoff_max: float = 60.0
    timeout: float = 120.0  # per request (connect and each read)


def retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def _unreachable(exc: requests.ConnectionError) -> bool:
    """Refused or unresolvable: nobody is there. A reset mid-request is worth a retry."""
    text = repr(exc)
    return any(
        s in text
        for s in (
            "Connection refused",
            "Name or service not known",
            "nodename nor servname",
            "Failed to resolve",
            "No address associated",
        )
    )


class VendorSession(requests.Session):
    def __init__(
        self,
        vendor: str,
        credential_key: str,
        policy: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        super().__init__()
        self.vendor = vendor
        self.credential_key = credential_key
        self.policy = policy or RetryPolicy()
        self.pacer = pacer or Pacer(sleep)
        self.sleep = sleep
        self.retries = 0  # how many retries this session needed (reported in load metadata)

    def _backoff(self, attempt: int) -> float:
        delay = min(self.policy.backoff_max, self.policy.backoff_base * 2 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", self.policy.timeout)
        try:
            return super().request(method, url, *args, **kwargs)
        except requests.RequestException as exc:
            # Preparing the request (its headers and URL) happens here, before send().
            failure = self._not_sent(method, url, exc)
        raise failure  # outside the handler: requests' error is not kept as its context

    def _not_sent(self, method: str, url: str, exc: requests.RequestException) -> RequestNotSent:
        reason = type(exc).__name__
        if isinstance(exc, requests.exceptions.InvalidHeader):
            reason += (
                ": a header holds a character HTTP does not allow, most likely a line break at the end "
                f"of {setting(self.vendor, self.credential_key)}; set it again without it"
            )
        return RequestNotSent(self.vendor, method, url, reason)

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:  # type: ignore[override]
        # Retries live in send(), not request(): dlt's REST client prepares requests itself
        # and calls send() directly, and must get the same patience as everyone else.
        kwargs.setdefault("timeout", self.policy.timeout)
        method, url = request.method or "GET", request.url or ""
        attempts = self.policy.max_attempts
        for attempt in range(1, attempts + 1):
            self.pacer.before_request()
            failure: RequestNotSent | None = None
            try:
                response = super().send(request, **kwargs)
            except requests.ConnectionError as exc:
                if _unreachable(exc):
                    raise VendorUnreachable(self.vendor, url, type(exc).__name__) from None
                if attempt == attempts:
                    raise RequestFailed(self.vendor, method, url, None, attempt, type(exc).__name__) from None
                self._retry(method, url, attempt, f"{type(exc).__name__}", self._backoff(attempt))
                continue
            except requests.Timeout as exc:
                if attempt == attempts:
                    raise RequestFailed(self.vendor, method, url, None, attempt, type(exc).__name__) from None
                self._retry(method, url, attempt, "timeout", self._backoff(attempt))
                continue
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
                # The connection dropped partway through the body (requests reads it in send()).
                if attempt == attempts:
                    raise RequestFailed(self.vendor, method, url, None, attempt, type(exc).__name__) from None
                self._retry(method, url, attempt, f"a body cut off ({type(exc).__name__})", self._backoff(attempt))
                continue
            except requests.RequestException as exc:  # a retry sends the same refused header or URL
                failure = self._not_sent(method, url, exc)
            if failure is not None:
                raise failure  # outside the handler: requests' error is not kept as its context
            status = response.status_code
            if status in (401, 403):
                raise CredentialRejected(self.vendor, url, status, self.credential_key)
            if status in RETRY_STATUSES:
                if attempt == attempts:
                    raise RequestFailed(self.vendor, method, url, status, attempt, response.text)
                # The retry's own wait covers the budget: the pacer is not asked as well, or a
                # 429 that reports a full bucket would be waited out twice.
                retry_after = retry_after_seconds(response)
                wait = retry_after if retry_after is not None else self._backoff(attempt)
                self._retry(method, url, attempt, f"HTTP {status}", min(wait, 300.0))
                response.close()
                continue
            self.pacer.after_response(response)
            return response
        raise AssertionError("unreachable")

    def _retry(self, method: str, url: str, attempt: int, why: str, wait: float) -> None:
        self.retries += 1
        log.warning(
            "%s: %s %s answered %s; retry %d/%d in %.1fs",
            self.vendor,
            method,
            redact_url(url),
            why,
            attempt,
            self.policy.max_attempts - 1,
            wait,
        )
        self.sleep(wait)


def raise_for_status(response: requests.Response, vendor: str) -> requests.Response:
    """After retries: any other 4xx is a request Tessera got wrong; say which and why."""
    if response.status_code >= 400:
        raise RequestFailed(
            vendor, response.request.method or "GET", response.url, response.status_code, 1, response.text
        )
    return response
