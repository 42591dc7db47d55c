"""Mailchimp's HTTP side for the destination: the API root, basic auth, retries, and a cap on
simultaneous connections.

Mailchimp documents one limit: 10 simultaneous connections per API key, answered with 429 beyond
(with no Retry-After, and no per-second quota). Every request here holds one of
`max_connections` slots while it is on the wire, whichever thread sends it, so the cap holds
however the caller parallelizes. Retries of 429, 5xx and dropped connections come from the
project's `VendorSession` (one per thread: a session's retry counter is not thread-safe), and
the retry's wait happens outside the slot so a sleeping request never blocks a live one.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

from ingestion.common.errors import VendorError
from ingestion.common.http import RetryPolicy, VendorSession
from ingestion.common.pacing import Pacer, Sleep

VENDOR = "mailchimp"
#: Mailchimp's documented maximum of simultaneous connections per API key.
MAILCHIMP_MAX_CONNECTIONS = 10
#: The default keeps two of Mailchimp's ten connections free for whatever else uses the same
#: key at the same time (the Mailchimp loader, the shop's own integrations), so a push never
#: starves them into 429s.
DEFAULT_MAX_CONNECTIONS = 8

T = TypeVar("T")
R = TypeVar("R")

_DC = re.compile(r"-([a-z]+[0-9]+)$")


def api_root(base_url: str | None, api_key: str) -> str:
    """The API root ending in `/3.0`: `base_url` as given (either form), or, when it is not
    given, `https://<dc>.api.mailchimp.com/3.0` with the data center taken from the key's
    `-<dc>` suffix, as Mailchimp documents."""
    if base_url:
        root = base_url.strip().rstrip("/")
        return root if root.endswith("/3.0") else f"{root}/3.0"
    match = _DC.search(api_key.strip())
    if match is None:
        raise ValueError(
            "mailchimp: the API key has no '-<dc>' data-center suffix (keys look like '<hex>-us21'); "
            "pass the base URL (https://<dc>.api.mailchimp.com/3.0) or a complete key"
        )
    return f"https://{match.group(1)}.api.mailchimp.com/3.0"


class _SlotAdapter(HTTPAdapter):
    """Sends each attempt while holding a connection slot, and counts it."""

    def __init__(self, api: MailchimpApi) -> None:
        super().__init__(pool_connections=1, pool_maxsize=1)
        self._api = api

    def send(self, request, *args, **kwargs):  # type: ignore[override]
        with self._api._slots:
            self._api._count_request()
            return super().send(request, *args, **kwargs)


class MailchimpApi:
    """Thread-safe JSON calls against one Mailchimp account, at most `max_connections` at once.

    `requests` and `retries` count every HTTP attempt and every retry since construction."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        policy: RetryPolicy | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        if not 1 <= max_connections <= MAILCHIMP_MAX_CONNECTIONS:
            raise ValueError(
                f"mailchimp: max_connections must be between 1 and {MAILCHIMP_MAX_CONNECTIONS} "
                f"(Mailchimp's limit per API key), got {max_connections}"
            )
        self.root = api_root(base_url, api_key)
        self.max_connections = max_connections
        self._api_key = api_key
        self._policy = policy
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[VendorSession] = []
        self._requests = 0
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:  # never the key
        return f"MailchimpApi(root={self.root!r}, max_connections={self.max_connections})"

    # -- counters --------------------------------------------------------------------------------

    def _count_request(self) -> None:
        with self._lock:
            self._requests += 1

    @property
    def requests(self) -> int:
        return self._requests

    @property
    def retries(self) -> int:
        with self._lock:
            return sum(s.retries for s in self._sessions)

    # -- calls -----------------------------------------------------------------------------------

    def _session(self) -> VendorSession:
        session = getattr(self._local, "session", None)
        if session is None:
            # No pacing: Mailchimp sends no budget headers; the slots are the pacing.
            session = VendorSession(VENDOR, "api_key", self._policy, Pacer(self._sleep), sleep=self._sleep)
            session.auth = ("tessera", self._api_key)  # any user name; the key is the password
            adapter = _SlotAdapter(self)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request to `<root><path>` after retries. 401/403 raise `CredentialRejected`;
        other 4xx answers are returned for the caller to read (Mailchimp's problem documents)."""
        return self._session().request(method, f"{self.root}{path}", **kwargs)

    def parallel(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`fn` over `items` on up to `max_connections` threads, results in input order; the
        first exception is raised once every call has finished."""
        items = list(items)
        if len(items) <= 1:
            return [fn(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_connections, thread_name_prefix="mailchimp")
        futures = [self._pool.submit(fn, item) for item in items]
        errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            for session in self._sessions:
                session.close()


class MailchimpRefused(VendorError):
    """Mailchimp refused a call the whole push depends on (not one member's record)."""

    def __init__(self, what: str, response: requests.Response) -> None:
        self.status = response.status_code
        super().__init__(VENDOR, f"could not {what}: HTTP {response.status_code} {problem_text(response)}")


def problem_text(response: requests.Response) -> str:
    """Mailchimp's own words for a refusal: the problem's title and detail, and the field
    errors when it lists them."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    text = f"{body.get('title', 'Error')}: {body.get('detail', '')}".strip()
    fields = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in body.get("errors") or [])
    return f"{text} ({fields})" if fields else text


def raise_for_problem(response: requests.Response, what: str) -> None:
    if response.status_code >= 400:
        raise MailchimpRefused(what, response)
