"""HubSpot's quirks: list versus search, paging the search, associations, loadable records.

- The first run pages the list endpoint (cursor paging, associations included); later runs ask
  the search endpoint for records whose last-modified property is at or after the cursor minus
  the lookback, sorted ascending.
- Searches are paged by key, never by offset (`after`): each query asks again from the newest
  modification time the last page reached, and the records of that millisecond, which come
  twice, are yielded once. A record modified while the run pages moves to a later query; under
  offsets it would shift every later record up one place and one would never be read. So the
  search's 10,000-result window is never reached either. If a whole page shares one
  millisecond (a bulk import), those records are read in `hs_object_id` order, by key too,
  before moving past that instant.
- Search results carry no associations: deals found by a search get theirs from the associations
  batch read, 1,000 deals a request per associated object type.
- Each page is screened before dlt's cursor sees it (a malformed `updatedAt` must never become
  the cursor). A property that arrives as a JSON number is turned back into the string HubSpot
  serves every property as, so a drifting type never forks a column.
- A run that quarantined records holds its cursor at the earliest modification time among them
  (`properties.<last-modified>` survives a broken `updatedAt`), so the next runs read them again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import dlt
import requests

from ingestion.common.cursors import hold_cursor as common_hold_cursor
from ingestion.common.errors import VendorError, setting
from ingestion.common.http import RetryPolicy, VendorSession, raise_for_status
from ingestion.common.pacing import MinIntervalPacer, RemainingPacer
from ingestion.common.quarantine import parse_timestamp, screen
from ingestion.hubspot.settings import (
    ASSOCIATIONS_BATCH_READ_PATH,
    ASSOCIATIONS_BATCH_SIZE,
    OBJECTS_PATH,
    RATE_LIMIT_INTERVAL_MS,
    RATE_LIMIT_REMAINING,
    REPAIR_RUNS,
    SEARCHES_PER_SECOND,
    VENDOR,
    CrmObject,
)

log = logging.getLogger("tessera.ingestion")

Record = dict[str, Any]
Cursor = dlt.sources.incremental[datetime]


def _session(access_token: str, policy: RetryPolicy | None, pacer: Any) -> VendorSession:
    session = VendorSession(VENDOR, "access_token", policy, pacer)
    session.headers.update({"Authorization": f"Bearer {access_token}", "Accept": "application/json"})
    return session


def _epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _filter(prop: str, operator: str, value: int) -> dict[str, str]:
    return {"propertyName": prop, "operator": operator, "value": str(value)}


def _next_after(body: dict[str, Any]) -> str | None:
    return ((body.get("paging") or {}).get("next") or {}).get("after")


def _object_id(record: Any) -> int | None:
    if not isinstance(record, dict):
        return None
    for value in (record.get("id"), (record.get("properties") or {}).get("hs_object_id")):
        if isinstance(value, int | str) and str(value).strip().isdigit():
            return int(value)
    return None


def _modified(record: Any, obj: CrmObject) -> datetime | None:
    """When the record last changed, from the property searches filter on, else `updatedAt`."""
    if not isinstance(record, dict):
        return None
    return parse_timestamp((record.get("properties") or {}).get(obj.modified)) or parse_timestamp(
        record.get("updatedAt")
    )


class HubSpotApi:
    """CRM v3 objects through two sessions: list/get paced on HubSpot's budget headers, and
    search paced to its own per-second limit (search answers carry no budget headers)."""

    def __init__(
        self,
        base_url: str,
        access_token: str,
        policy: RetryPolicy | None,
        page_size: int,
        search_page_size: int,
    ) -> None:
        self.root = base_url.rstrip("/") + "/"
        self.session = _session(access_token, policy, RemainingPacer(RATE_LIMIT_REMAINING, RATE_LIMIT_INTERVAL_MS))
        self.search_session = _session(access_token, policy, MinIntervalPacer(SEARCHES_PER_SECOND))
        self.page_size = page_size
        self.search_page_size = search_page_size

    def _url(self, obj: CrmObject, suffix: str = "") -> str:
        return self.root + OBJECTS_PATH.format(object_type=obj.name) + suffix

    def _json(self, response: requests.Response) -> dict[str, Any]:
        if response.status_code == 404 and "OBJECT_NOT_FOUND" not in response.text:
            raise VendorError(
                VENDOR,
                f"404 from {response.url.split('?')[0]}: no HubSpot CRM API there. "
                f"Check {setting(VENDOR, 'base_url')} (https://api.hubapi.com)",
            )
        raise_for_status(response, VENDOR)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise VendorError(
                VENDOR,
                f"{response.url.split('?')[0]} did not answer with a JSON object. Check {setting(VENDOR, 'base_url')}",
            )
        return body

    # -- list -------------------------------------------------------------------------------

    def list_pages(self, obj: CrmObject) -> Iterator[list[Any]]:
        """Every record, in id order, with its associations."""
        params: dict[str, Any] = {"limit": self.page_size, "properties": ",".join(obj.properties), "archived": "false"}
        if obj.associations:
            params["associations"] = ",".join(obj.associations)
        while True:
            body = self._json(self.session.get(self._url(obj), params=params))
            yield body.get("results") or []
            after = _next_after(body)
            if not after:
                return
            params = {**params, "after": after}

    def associations(self, obj: CrmObject, records: Iterable[Record]) -> None:
        """Add each record's `associations` block, as the list endpoint serves it: one batch
        read per target and 1,000 records. A record with no association of a kind (or deleted
        since the search found it) is one of the batch's `NO_ASSOCIATIONS_FOUND` errors."""
        by_id = {str(record["id"]): record for record in records}
        ids = list(by_id)
        for record in by_id.values():
            record["associations"] = {}
        for target in obj.associations:
            url = self.root + ASSOCIATIONS_BATCH_READ_PATH.format(from_type=obj.name, to_type=target)
            for start in range(0, len(ids), ASSOCIATIONS_BATCH_SIZE):
                inputs = [{"id": i} for i in ids[start : start + ASSOCIATIONS_BATCH_SIZE]]
                body = self._json(self.session.post(url, json={"inputs": inputs}))
                for error in body.get("errors") or []:
                    if not str(error.get("subCategory", "")).endswith("NO_ASSOCIATIONS_FOUND"):
                        raise VendorError(VENDOR, f"reading {obj.name} -> {target} associations: {error}")
                for result in body.get("results") or []:
                    record = by_id.get(str((result.get("from") or {}).get("id")))
                    if record is not None:
                        record["associations"][target] = {"results": result.get("to") or []}

    # -- search -----------------------------------------------------------------------------

    def search_pages(self, obj: CrmObject, since: datetime) -> Iterator[list[Any]]:
        """Records modified at or after `since`, oldest change first, a page per query (see the
        module's notes: paged by key, so a record changed meanwhile is not skipped)."""
        bound, operator = _epoch_ms(since), "GTE"
        while True:
            page, more = self._search(obj, [_filter(obj.modified, operator, bound)], obj.modified)
            if page:
                yield page
            if not more:
                return
            times = [_epoch_ms(m) for m in (_modified(r, obj) for r in page) if m is not None]
            if not times:
                raise VendorError(VENDOR, f"{obj.name} search: a page has no {obj.modified} to page on from")
            newest = max(times)
            if min(times) < newest:
                bound, operator = newest, "GTE"
                continue
            # A whole page modified in one millisecond: read that instant in id order, then move past it.
            yield from self._ties(obj, newest)
            bound, operator = newest, "GT"

    def _ties(self, obj: CrmObject, at_ms: int) -> Iterator[list[Any]]:
        after_id = 0
        while True:
            filters = [_filter(obj.modified, "EQ", at_ms), _filter("hs_object_id", "GT", after_id)]
            page, more = self._search(obj, filters, "hs_object_id")
            if page:
                yield page
            if not more:
                return
            newest_id = max((i for i in (_object_id(r) for r in page) if i is not None), default=after_id)
            if newest_id <= after_id:
                raise VendorError(VENDOR, f"{obj.name} search: paging by hs_object_id did not advance")
            after_id = newest_id

    def _search(self, obj: CrmObject, filters: list[dict[str, str]], sort: str) -> tuple[list[Any], bool]:
        """The first page of one search, ascending by `sort`, and whether more follow it."""
        body: dict[str, Any] = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": list(obj.properties),
            "limit": self.search_page_size,
        }
        page = self._json(self.search_session.post(self._url(obj, "/search"), json=body))
        results = page.get("results") or []
        return results, bool(results) and _next_after(page) is not None


# -- records --------------------------------------------------------------------------------


def screen_page(page: list[Any], obj: CrmObject) -> tuple[list[Record], list[Any], list[Any]]:
    """(good records, quarantine rows to yield, the records those rows were made from)."""
    good: list[Record] = []
    rows: list[Any] = []
    for item in screen(page, obj.name, obj.rules):
        (good if isinstance(item, dict) else rows).append(item)
    kept = {id(r) for r in good}
    return good, rows, [r for r in page if id(r) not in kept]


def prepare(record: Record, obj: CrmObject) -> Record:
    """Timestamps as UTC datetimes, every property a string, associations as child rows."""
    for name in ("createdAt", "updatedAt"):
        parsed = parse_timestamp(record.get(name))
        if parsed is not None:
            record[name] = parsed.astimezone(UTC)
    properties = record.get("properties") or {}
    for name, value in properties.items():
        if isinstance(value, bool):
            properties[name] = "true" if value else "false"
        elif value is not None and not isinstance(value, str):
            properties[name] = str(value)
    block = record.pop("associations", None) or {}
    if obj.associations:
        record["associations"] = [
            {"to_object_type": target, "to_id": str(link.get("id")), "association_type": link.get("type")}
            for target, links in block.items()
            for link in (links or {}).get("results") or []
        ]
    return record


def changed_records(api: HubSpotApi, obj: CrmObject, cursor: Cursor) -> Iterator[Any]:
    """The resource body: every record on the first run, then those changed since the cursor."""
    previous = cursor.get_state()["last_value"]
    full = previous == cursor.initial_value
    pages = api.list_pages(obj) if full else api.search_pages(obj, cursor.start_value)
    seen: set[str] = set()
    holds: list[datetime] = []
    for page in pages:
        good, rows, bad = screen_page(page, obj)
        yield from rows
        holds += [_modified(record, obj) or previous for record in bad]
        fresh = []
        for record in good:
            if record["id"] not in seen:
                seen.add(record["id"])
                fresh.append(record)
        if fresh and obj.associations and not full:
            api.associations(obj, fresh)
        if fresh:
            yield [prepare(record, obj) for record in fresh]
    hold_cursor(cursor, holds)


def hold_cursor(cursor: Cursor, points: Iterable[datetime]) -> None:
    """Keep the cursor no later than the earliest of `points` so quarantined records are read
    again (see common)."""
    common_hold_cursor(cursor, points, vendor=VENDOR, max_runs=REPAIR_RUNS)
