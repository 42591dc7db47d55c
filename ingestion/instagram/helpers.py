"""The Graph API's quirks: errors in HTTP 400s, cursor paging, and edges without time filters.

- Throttling is HTTP 400 with Graph error code 4, 17, 32, 613 or 80002 (or any error marked
  `is_transient`): `GraphSession` retries those with backoff, waiting at least what
  `X-Business-Use-Case-Usage` estimates, on top of `VendorSession`'s retries of 429/5xx. A
  missing or invalid token (codes 102, 104, 190) or missing permissions (10, 200) fail at once
  naming the setting. The token travels in the `Authorization` header, so it is in no URL,
  paging link or message.
- Paging follows `paging.next`, which carries every parameter of the first request.
- Media are read with `since` (the API's own time filter). Mentions and comments have none and
  come newest first, so reading stops at the first page that reaches past the cursor.
- Comments are read per media, for media published within `comment_window_days` before the
  comments cursor (media without comments are skipped: `comments_count` says so).
- Each page is screened before dlt's cursor sees it; timestamps become UTC datetimes.
- A run that quarantined records (or could not visit a media) keeps its cursor where it was, so
  the next run reads the same window again and loads them when they arrive clean.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
import requests

from ingestion.common.cursors import hold_cursor as common_hold_cursor
from ingestion.common.errors import CredentialRejected, RequestFailed, VendorError, setting
from ingestion.common.http import RetryPolicy, VendorSession
from ingestion.common.pacing import UsagePercentPacer
from ingestion.common.quarantine import RecordRules, parse_timestamp, screen
from ingestion.instagram.settings import (
    COMMENT_FIELDS,
    COMMENT_RULES,
    CREDENTIAL_CODES,
    MEDIA_FIELDS,
    MEDIA_RULES,
    MEDIA_TO_VISIT_FIELDS,
    MENTION_FIELDS,
    MENTION_RULES,
    REPAIR_RUNS,
    THROTTLE_CODES,
    VENDOR,
)

log = logging.getLogger("tessera.ingestion")

Record = dict[str, Any]
Cursor = dlt.sources.incremental[datetime]
# Graph subcode of "Object with ID ... does not exist": a deleted media, or a wrong account id.
NO_SUCH_OBJECT = 33


class GraphRequestFailed(RequestFailed):
    """The Graph API refused a request with an error a retry does not fix."""

    def __init__(self, method: str, url: str, status: int, attempts: int, error: dict[str, Any]) -> None:
        self.code = error.get("code")
        self.subcode = error.get("error_subcode")
        detail = f"Graph error {self.code}: {error.get('message', '')}" if error else "not a Graph API answer"
        super().__init__(VENDOR, method, url, status, attempts, detail)


def graph_error(response: requests.Response) -> dict[str, Any] | None:
    """The `error` object of a failed Graph call ({} when the body is not Graph's), or None."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def regain_seconds(response: requests.Response) -> float:
    """Meta's estimate (minutes, in `X-Business-Use-Case-Usage`) of when calls are allowed again."""
    try:
        usage = json.loads(response.headers.get("X-Business-Use-Case-Usage") or "{}")
        minutes = [float(u.get("estimated_time_to_regain_access") or 0) for v in usage.values() for u in v]
    except (ValueError, TypeError, AttributeError):
        return 0.0
    return 60.0 * max(minutes, default=0.0)


class GraphSession(VendorSession):
    """`VendorSession` plus the Graph API's own error answers (throttling is a 400 there)."""

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:  # type: ignore[override]
        method, url = request.method or "GET", request.url or ""
        attempts = self.policy.max_attempts
        for attempt in range(1, attempts + 1):
            response = super().send(request, **kwargs)
            error = graph_error(response)
            if error is None:
                return response
            code = error.get("code")
            if code in CREDENTIAL_CODES:
                raise CredentialRejected(self.vendor, url, response.status_code, self.credential_key)
            if not error and response.status_code == 404:
                raise VendorError(
                    self.vendor,
                    f"404 from {url.split('?')[0]}: no Graph API there. Check {setting(VENDOR, 'base_url')} "
                    f"(https://graph.facebook.com) and {setting(VENDOR, 'api_version')}",
                )
            if (code not in THROTTLE_CODES and error.get("is_transient") is not True) or attempt == attempts:
                raise GraphRequestFailed(method, url, response.status_code, attempt, error)
            wait = min(self.policy.backoff_max, max(self._backoff(attempt), regain_seconds(response)))
            # This wait covers the budget, as VendorSession's does for a 429: the pacer, which
            # read "100% used" from this answer too, must not pause again before the retry.
            self.pacer.after_response(requests.Response())
            response.close()
            self._retry(method, url, attempt, f"Graph error {code}", wait)
        raise AssertionError("unreachable")


class GraphApi:
    """The brand's Instagram business account, read through a `GraphSession`."""

    def __init__(
        self,
        base_url: str,
        api_version: str,
        access_token: str,
        ig_user_id: str,
        policy: RetryPolicy | None,
        page_size: int,
    ) -> None:
        version = api_version.strip("/")
        self.root = f"{base_url.rstrip('/')}/{version}/" if version else f"{base_url.rstrip('/')}/"
        self.ig_user_id = str(ig_user_id).strip()
        self.page_size = page_size
        self.session = GraphSession(VENDOR, "access_token", policy, UsagePercentPacer())
        self.session.headers.update({"Authorization": f"Bearer {access_token}", "Accept": "application/json"})

    def pages(self, path: str, params: dict[str, Any]) -> Iterator[list[Any]]:
        url: str | None = self.root + path
        query: dict[str, Any] | None = {**params, "limit": self.page_size}
        while url:
            response = self.session.get(url, params=query)
            try:
                body = response.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise VendorError(VENDOR, f"{url.split('?')[0]} did not answer with a JSON object")
            yield body.get("data") or []
            url = (body.get("paging") or {}).get("next")
            query = None  # the next link carries every parameter

    def account_pages(self, edge: str, params: dict[str, Any]) -> Iterator[list[Any]]:
        """Pages of an edge of the brand's account (`media`, `tags`)."""
        try:
            yield from self.pages(f"{self.ig_user_id}/{edge}", params)
        except GraphRequestFailed as exc:
            if exc.code == 100 and exc.subcode == NO_SUCH_OBJECT:
                raise VendorError(
                    VENDOR,
                    f"no Instagram business account {self.ig_user_id!r} for this token. "
                    f"Check {setting(VENDOR, 'ig_user_id')}",
                ) from None
            raise

    def media_to_visit(self, since: datetime) -> tuple[list[str], bool]:
        """Ids of media published since `since` that have comments, and whether every listed
        media could be identified."""
        ids: dict[str, None] = {}  # listing order, each media once
        complete = True
        for page in self.account_pages("media", {"fields": MEDIA_TO_VISIT_FIELDS, "since": _unix(since)}):
            for media in page:
                media_id = media.get("id") if isinstance(media, dict) else None
                if not media_id:
                    complete = False
                    continue
                try:
                    has_comments = int(media.get("comments_count", 1)) > 0
                except (TypeError, ValueError):
                    has_comments = True
                if has_comments:
                    ids[str(media_id)] = None
        return list(ids), complete


def _unix(value: datetime) -> int:
    return int(value.timestamp())


# -- records --------------------------------------------------------------------------------


def screen_page(page: list[Any], resource: str, rules: RecordRules) -> tuple[list[Record], list[Any]]:
    """(good records, timestamps parsed; quarantine rows for the others)."""
    good: list[Record] = []
    rows: list[Any] = []
    for item in screen(page, resource, rules):
        if isinstance(item, dict):
            parsed = parse_timestamp(item.get("timestamp"))
            if parsed is not None:
                item["timestamp"] = parsed.astimezone(UTC)
            good.append(item)
        else:
            rows.append(item)
    return good, rows


def _read(
    pages: Iterable[list[Any]],
    resource: str,
    rules: RecordRules,
    seen: set[str],
    stop_before: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> Generator[Any, None, bool]:
    """Screened pages, each record once; with `stop_before`, stop after the first page that
    reaches older records (the listing is newest first). Returns whether it quarantined any."""
    quarantined = False
    for page in pages:
        good, rows = screen_page(page, resource, rules)
        quarantined = quarantined or bool(rows)
        yield from rows
        fresh = [r for r in good if r["id"] not in seen]
        seen.update(r["id"] for r in fresh)
        if fresh:
            yield [{**r, **extra} for r in fresh] if extra else fresh
        times = [r["timestamp"] for r in good if isinstance(r.get("timestamp"), datetime)]
        if stop_before is not None and times and min(times) < stop_before:
            break
    return quarantined


def media_records(api: GraphApi, cursor: Cursor) -> Iterator[Any]:
    previous = cursor.get_state()["last_value"]
    pages = api.account_pages("media", {"fields": MEDIA_FIELDS, "since": _unix(cursor.start_value)})
    quarantined = yield from _read(pages, "media", MEDIA_RULES, set())
    hold_cursor(cursor, [previous] if quarantined else [])


def mention_records(api: GraphApi, cursor: Cursor) -> Iterator[Any]:
    previous = cursor.get_state()["last_value"]
    pages = api.account_pages("tags", {"fields": MENTION_FIELDS})
    quarantined = yield from _read(pages, "mentions", MENTION_RULES, set(), stop_before=cursor.start_value)
    hold_cursor(cursor, [previous] if quarantined else [])


def comment_records(api: GraphApi, cursor: Cursor, window_days: int) -> Iterator[Any]:
    """Comments newer than the cursor (minus the lookback) on media recent enough to get them;
    on the first run, every comment on every media."""
    previous = cursor.get_state()["last_value"]
    first_run = previous == cursor.initial_value
    since = cursor.initial_value if first_run else cursor.start_value - timedelta(days=window_days)
    media_ids, complete = api.media_to_visit(since)
    quarantined = not complete
    seen: set[str] = set()
    for media_id in media_ids:
        pages = api.pages(f"{media_id}/comments", {"fields": COMMENT_FIELDS})
        try:
            quarantined |= yield from _read(
                pages, "comments", COMMENT_RULES, seen, cursor.start_value, {"media_id": media_id}
            )
        except GraphRequestFailed as exc:
            if exc.code == 100 and exc.subcode == NO_SUCH_OBJECT:
                log.info("%s: media %s was deleted before its comments were read", VENDOR, media_id)
                continue
            raise
    hold_cursor(cursor, [previous] if quarantined else [])


def hold_cursor(cursor: Cursor, points: Iterable[datetime]) -> None:
    """Keep the cursor no later than the earliest of `points` so quarantined records are read
    again (see common). Graph API records carry no modification time: the point is the cursor
    the run started from."""
    common_hold_cursor(cursor, points, vendor=VENDOR, max_runs=REPAIR_RUNS)
