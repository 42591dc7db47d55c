"""Klaviyo's JSON:API over the shared vendor session, paced per endpoint.

`ingestion.common.http.VendorSession` does the retries (429 honouring `Retry-After`, 5xx and
dropped connections with backoff) and raises `CredentialRejected` on 401/403 without the key.
This module adds what a push needs on top: one session per worker thread (requests sessions
are not meant to be shared by threads), a slot from the endpoint's window limiter for every
attempt, and counters the sync engine reports.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from activation.destinations.klaviyo.tiers import ENDPOINTS, windows
from activation.destinations.pacing import EndpointLimiters, Window, WindowLimiter
from ingestion.common.http import RetryPolicy, VendorSession
from ingestion.common.pacing import Pacer

VENDOR = "klaviyo"
MEDIA_TYPE = "application/vnd.api+json"


@dataclass
class Counters:
    """What a push cost: attempts sent, retries, and 429s received."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


class _SlotPacer(Pacer):
    """Takes a slot of the current endpoint's limiter before every attempt; the session's
    response hook gives it back when the answer arrives."""

    def __init__(self, counters: Counters) -> None:
        super().__init__()
        self.counters = counters
        self.limiter: WindowLimiter | None = None
        self._ticket: int | None = None

    def before_request(self) -> None:
        self.release()  # an attempt that ended without an answer (a dropped connection)
        assert self.limiter is not None, "call through KlaviyoClient.call"
        self._ticket = self.limiter.acquire()
        self.counters.add("requests")

    def release(self) -> None:
        if self._ticket is not None and self.limiter is not None:
            self.limiter.release(self._ticket)
        self._ticket = None


class _Session(VendorSession):
    def __init__(self, api_key: str, revision: str, counters: Counters, policy: RetryPolicy) -> None:
        self.slots = _SlotPacer(counters)
        super().__init__(VENDOR, "api_key", policy=policy, pacer=self.slots)
        self.counters = counters
        self.headers.update(
            {
                "Authorization": f"Klaviyo-API-Key {api_key}",
                "revision": revision,
                "Accept": MEDIA_TYPE,
                "Content-Type": MEDIA_TYPE,
            }
        )
        self.hooks["response"].append(self._answered)

    def _answered(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        self.slots.release()
        if response.status_code == 429:
            self.counters.add("throttled")
        return response


class KlaviyoClient:
    """Calls Klaviyo endpoints by name (see `tiers.ENDPOINTS`), from any number of threads."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        revision: str,
        policy: RetryPolicy | None = None,
        tiers: Mapping[str, tuple[Window, Window]] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.revision = revision
        self.policy = policy or RetryPolicy()
        self.counters = Counters()
        self.limiters = EndpointLimiters({name: windows(name, tiers) for name in ENDPOINTS})
        self._local = threading.local()
        self._sessions: list[_Session] = []
        self._sessions_lock = threading.Lock()

    def _session(self) -> _Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = _Session(self._api_key, self.revision, self.counters, self.policy)
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def call(
        self,
        endpoint: str,
        *,
        path_id: str | None = None,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        data: bytes | None = None,
    ) -> requests.Response:
        """One request to a named endpoint, paced and retried; returns the final answer (a
        4xx other than 401/403/429 is returned for the caller to read Klaviyo's detail)."""
        method, template, _ = ENDPOINTS[endpoint]
        url = self.base_url + template.format(id=path_id)
        session = self._session()
        session.slots.limiter = self.limiters[endpoint]
        retries_before = session.retries
        try:
            return session.request(method, url, params=params, json=body if data is None else None, data=data)
        finally:
            session.slots.release()
            self.counters.add("retries", session.retries - retries_before)

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
        self._local = threading.local()


def error_detail(response: requests.Response) -> str:
    """Klaviyo's own words for a refused request: the first error's detail (and pointer)."""
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if not errors:
        return f"HTTP {response.status_code}"
    first = errors[0]
    pointer = (first.get("source") or {}).get("pointer")
    detail = first.get("detail") or first.get("title") or f"HTTP {response.status_code}"
    return f"{detail} ({pointer})" if pointer else detail


def error_pointer(response: requests.Response) -> str | None:
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return None
    return (errors[0].get("source") or {}).get("pointer") if errors else None
