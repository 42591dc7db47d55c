"""Mailchimp's quirks: the API key as HTTP Basic password, offset paging with `total_items`,
ISO time filters applied by the server, nested report events, and re-reading what a run had to
quarantine."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from dlt.extract.incremental import Incremental

from ingestion.common.errors import VendorUnreachable
from ingestion.common.http import RetryPolicy, VendorSession, raise_for_status
from ingestion.common.pacing import Pacer
from ingestion.common.quarantine import RecordRules, parse_timestamp, screen
from ingestion.mailchimp.settings import API_PATH, EXCLUDE_LINKS, VENDOR

On404 = Literal["fail", "skip", "wrong_url"]


def api_root(base_url: str) -> str:
    """`https://<dc>.api.mailchimp.com` -> `https://<dc>.api.mailchimp.com/3.0` (given either)."""
    root = base_url.strip().rstrip("/")
    return root if root.endswith(API_PATH) else root + API_PATH


def mailchimp_session(api_key: str, policy: RetryPolicy | None = None) -> VendorSession:
    # Mailchimp's only documented limit is 10 simultaneous connections per key, and it sends no
    # budget headers: the loader makes one request at a time, so the base Pacer (no pacing) is
    # right, and a 429 (which carries no Retry-After from Mailchimp) is retried with backoff.
    session = VendorSession(VENDOR, "api_key", policy, Pacer())
    session.auth = ("tessera", api_key)  # any user name; the key is the password
    return session


def get_json(session: VendorSession, url: str, params: dict[str, Any], on_404: On404 = "fail") -> dict | None:
    """One GET. A 404 is `on_404`: "skip" (None: a list or campaign deleted since it was listed),
    "wrong_url" (a collection every Mailchimp account has: the base URL is wrong) or "fail"."""
    response = session.get(url, params=params)
    if response.status_code == 404 and on_404 == "skip":
        return None
    if response.status_code == 404 and on_404 == "wrong_url":
        raise VendorUnreachable(VENDOR, url, "HTTP 404: no Mailchimp API answers there")
    raise_for_status(response, VENDOR)
    try:
        return response.json()
    except ValueError:
        raise VendorUnreachable(VENDOR, url, f"HTTP {response.status_code} without JSON: not a Mailchimp API") from None


def pages(
    session: VendorSession, url: str, collection: str, params: dict[str, Any], page_size: int, on_404: On404 = "fail"
) -> Iterator[list[dict]]:
    """Every page of a list endpoint: `count`/`offset` until `offset >= total_items`.

    The offset advances by the page size, not by the records received, so a record the server
    repeats on two pages does not push the next page's first record out of reach.
    """
    params = {"exclude_fields": EXCLUDE_LINKS.format(collection=collection), **params}
    offset = 0
    while True:
        body = get_json(session, url, {**params, "count": page_size, "offset": offset}, on_404) or {}
        records = body.get(collection) or []
        if records:
            yield records
        offset += page_size
        if not records or offset >= int(body.get("total_items") or 0):
            return


def iso(value: Any) -> str | None:
    """A cursor or filter value in Mailchimp's own form (`2026-10-21T15:00:00+00:00`)."""
    parsed = value if isinstance(value, datetime) else parse_timestamp(value) if value is not None else None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0).isoformat() if parsed else None


def latest(*values: Any) -> str | None:
    parsed = [v for v in map(iso, values) if v]
    return max(parsed) if parsed else None


def earliest(*values: Any) -> str | None:
    parsed = [v for v in map(iso, values) if v]
    return min(parsed) if parsed else None


def days_before(value: str, days: int) -> str:
    parsed = parse_timestamp(value)
    shifted = iso(parsed - timedelta(days=days)) if parsed else None
    if shifted is None:
        raise ValueError(f"not a timestamp: {value!r}")
    return shifted


def server_side(cursor: Incremental) -> str:
    """The `since` to send: the stored cursor minus the lookback (the start date on a first run).

    The API applies the window, so dlt is told not to filter rows again: records re-read to
    repair a quarantine may be older than the window and must still load.
    """
    since = iso(cursor.start_value)
    assert since is not None, "the cursor has an initial value"
    cursor.advance(None)
    return since


def store_cursor(cursor: Incremental, newest: str | None) -> None:
    """Move the cursor to the newest value this run saw (never back); dlt saves it with the load."""
    last = latest(cursor.get_state().get("last_value"), newest)
    if last is not None:
        cursor.advance(last)


def screened(
    records: list[dict], resource: str, rules: RecordRules, blank_is_null: tuple[str, ...] = ()
) -> tuple[list[dict], list[Any], list[dict]]:
    """(good records, quarantine rows, the bad records as served) of one page, through `screen()`.

    Mailchimp serves an unset timestamp or an empty address as "": those become null, so the
    warehouse column keeps its type.
    """
    good, quarantined, bad = [], [], []
    for record, item in zip(records, screen(records, resource, rules), strict=True):
        if item is record:
            for path in blank_is_null:
                *parents, last = path.split(".")
                holder = record
                for part in parents:
                    holder = holder.get(part) if isinstance(holder, dict) else None
                if isinstance(holder, dict) and holder.get(last) == "":
                    holder[last] = None
            good.append(record)
        else:
            quarantined.append(item)
            bad.append(record)
    return good, quarantined, bad


def subscriber_hash(email: Any) -> str | None:
    """Mailchimp's member id (and report `email_id`): the MD5 of the lower-cased address."""
    return hashlib.md5(email.lower().encode()).hexdigest() if isinstance(email, str) and email else None


ACTIVITY_KEY = ("campaign_id", "email_id", "action", "timestamp", "url")


def activity_rows(recipient: dict) -> list[dict]:
    """One row per event of a report recipient, with the recipient's fields and a stable key.

    The key includes the url: two clicks on different links in the same second are two events.
    """
    base = {k: v for k, v in recipient.items() if k != "activity"}
    rows = []
    for event in recipient.get("activity") or []:
        row = {**base, **event}
        key = "|".join(str(row.get(k) or "") for k in ACTIVITY_KEY)
        rows.append({"activity_id": hashlib.md5(key.encode()).hexdigest(), **row})
    return rows


class Repairs:
    """Records a run quarantined, read again on the next runs; kept in the resource's dlt state.

    Per scope (an audience, a campaign, "" for a whole resource): ids to fetch one by one (the
    record's key survived the corruption) and a time to re-read from (its own cursor value, or the
    run's window start when nothing usable survived), each with how many runs saw it broken. A
    record still broken after `attempts` runs stays in quarantine and is no longer chased. The
    state only changes when the load succeeds, like the cursors.
    """

    KEY = "repairs"

    def __init__(self, state: dict, attempts: int) -> None:
        self._pending: dict[str, dict] = state.pop(self.KEY, {})
        self._found: dict[str, dict] = state.setdefault(self.KEY, {})
        self.attempts = attempts

    def scopes(self) -> list[str]:
        return list(self._pending)

    def take(self, scope: str) -> tuple[dict[str, int], tuple[str, int] | None]:
        """The ids (-> runs that saw them broken) and the (since, runs) noted for a scope last time."""
        entry = self._pending.pop(scope, {})
        since = entry.get("since")
        return dict(entry.get("ids", {})), (since[0], since[1]) if since else None

    def add_id(self, scope: str, record_id: str, seen: int = 0) -> None:
        if seen + 1 <= self.attempts:
            ids = self._found.setdefault(scope, {}).setdefault("ids", {})
            ids[record_id] = max(ids.get(record_id, 0), seen + 1)

    def add_since(self, scope: str, since: str, seen: int = 0) -> None:
        if seen + 1 > self.attempts:
            return
        entry = self._found.setdefault(scope, {})
        current = entry.get("since")
        if current is None or since < current[0]:
            entry["since"] = [since, max(seen + 1, current[1] if current else 0)]

    def finish(self) -> None:
        """Carry over what this run did not get to (a scope it did not see), counting the run."""
        for scope, entry in list(self._pending.items()):
            for record_id, seen in entry.get("ids", {}).items():
                self.add_id(scope, record_id, seen)
            if entry.get("since"):
                self.add_since(scope, entry["since"][0], entry["since"][1])
        self._pending.clear()


def time_of(records: Iterable[dict], field: str) -> list[str]:
    return [v for v in (iso(r.get(field)) for r in records) if v]
