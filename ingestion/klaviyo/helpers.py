"""Klaviyo's quirks: JSON:API collections, per-endpoint budgets, loadable rows, and repairs.

- Every request carries `Authorization: Klaviyo-API-Key <key>`, the `revision` header and the
  JSON:API media type. Paging follows `links.next` exactly as given: the link keeps the filter,
  sort and page size and carries an opaque keyset cursor, so the first request's parameters are
  never sent again.
- Each endpoint gets its own session and `RemainingPacer`: Klaviyo budgets endpoints separately
  and its `RateLimit-*` headers describe the endpoint that answered.
- Incremental reads filter server-side with `greater-than(<cursor>,<start>)`, the start being the
  stored cursor minus the lookback, and sort on the same attribute. Datetimes are written bare,
  in UTC and whole seconds (Klaviyo rejects quoted datetimes; flooring only widens the window).
- Each page is screened before dlt's cursor sees it (a `datetime` of "not-a-timestamp" must never
  become the cursor). A record seen twice in one listing is yielded once.
- A quarantined record is repaired where the API allows: one that kept its id is fetched again by
  id once the listing is done (`GET /api/<collection>/{id}`); one that lost its id kept its
  cursor value, so the run holds its cursor there and the next run's window reads it again.
- List membership has no change feed and removals leave no trace, so each run reads every list's
  members whole and replaces the list's rows (see `list_membership_rows`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
import requests

from ingestion.common.cursors import hold_cursor as common_hold_cursor
from ingestion.common.errors import VendorError, setting
from ingestion.common.http import RetryPolicy, VendorSession, raise_for_status
from ingestion.common.pacing import RemainingPacer
from ingestion.common.quarantine import check, parse_timestamp, quarantine_row
from ingestion.klaviyo.settings import (
    EMAIL_CHANNEL_FILTER,
    LIST_MEMBER_IDS,
    LIST_MEMBERS,
    LISTS,
    LOOKBACK_SECONDS,
    MEDIA_TYPE,
    RATE_LIMIT_REMAINING,
    RATE_LIMIT_RESET,
    REPAIR_RUNS,
    REVISION,
    VENDOR,
    Endpoint,
)

log = logging.getLogger("tessera.ingestion")

Record = dict[str, Any]
Cursor = dlt.sources.incremental[datetime]


class ListGone(Exception):
    """A list disappeared between listing the lists and reading its members."""


def klaviyo_time(value: datetime) -> str:
    """A datetime as a filter value: bare, UTC, whole seconds."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _path(record: Any, path: str) -> Any:
    value = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _id(record: Any) -> str | None:
    value = record.get("id") if isinstance(record, dict) else None
    return value if isinstance(value, str) and value else None


def _error_parameter(response: requests.Response) -> str | None:
    """`source.parameter` of a JSON:API error: the query parameter or header Klaviyo refused."""
    try:
        errors = response.json().get("errors") or []
        return (errors[0].get("source") or {}).get("parameter")
    except (ValueError, AttributeError, IndexError, TypeError):
        return None


class KlaviyoApi:
    """Klaviyo's read endpoints at `base_url` (https://a.klaviyo.com for the real service)."""

    def __init__(self, base_url: str, api_key: str, revision: str, policy: RetryPolicy | None) -> None:
        self.root = base_url.rstrip("/") + "/api/"
        self.revision = revision
        self.policy = policy
        self.headers = {"Authorization": f"Klaviyo-API-Key {api_key}", "revision": revision, "Accept": MEDIA_TYPE}
        self._sessions: dict[str, VendorSession] = {}
        self._sessions_lock = threading.Lock()

    def session(self, endpoint: str) -> VendorSession:
        with self._sessions_lock:  # resources read in parallel threads; one session per endpoint
            session = self._sessions.get(endpoint)
            if session is None:
                pacer = RemainingPacer(RATE_LIMIT_REMAINING, reset_s=RATE_LIMIT_RESET)
                session = VendorSession(VENDOR, "api_key", self.policy, pacer)
                session.headers.update(self.headers)
                self._sessions[endpoint] = session
            return session

    def pages(self, endpoint: Endpoint, params: Mapping[str, Any], list_id: str | None = None) -> Iterator[list[Any]]:
        """Every page of a collection; `params` go on the first request only."""
        url: str | None = self.root + endpoint.path.format(list_id=list_id)
        query: Mapping[str, Any] | None = params
        while url:
            response = self.session(endpoint.path).get(url, params=query)
            if response.status_code == 404 and list_id is not None:
                raise ListGone(list_id)  # the lists endpoint answered, so the base URL is right
            body = self._json(response)
            if not isinstance(body.get("data"), list):
                raise self._not_klaviyo(response)
            yield body["data"]
            url = (body.get("links") or {}).get("next")
            query = None

    def one(self, endpoint: Endpoint, resource_id: str, params: Mapping[str, Any]) -> Any:
        """One resource by id (`GET /api/<collection>/{id}`), or None if it no longer exists."""
        response = self.session(f"{endpoint.path}/id").get(f"{self.root}{endpoint.path}/{resource_id}", params=params)
        if response.status_code == 404:
            return None
        return self._json(response).get("data")

    def _json(self, response: requests.Response) -> dict[str, Any]:
        where = response.url.split("?")[0]
        if response.status_code == 404:
            raise VendorError(
                VENDOR,
                f"404 from {where}: no Klaviyo API there. Check {setting(VENDOR, 'base_url')} (https://a.klaviyo.com)",
            )
        if response.status_code == 400 and _error_parameter(response) == "revision":
            raise VendorError(
                VENDOR,
                f"400 from {where}: Klaviyo refused the API revision {self.revision!r}. "
                f"Set {setting(VENDOR, 'revision')} to a revision date such as {REVISION}",
            )
        raise_for_status(response, VENDOR)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self._not_klaviyo(response)
        return body

    @staticmethod
    def _not_klaviyo(response: requests.Response) -> VendorError:
        return VendorError(
            VENDOR,
            f"{response.url.split('?')[0]} did not answer with a JSON:API document. "
            f"Check {setting(VENDOR, 'base_url')}",
        )


class Screen:
    """Screening of one listing: good records once each, quarantine rows for the others, and
    what it takes to repair those (ids to fetch again, cursor values to hold the cursor at)."""

    def __init__(self, endpoint: Endpoint, floor: datetime | None = None, context: Record | None = None) -> None:
        self.endpoint = endpoint
        self.floor = floor  # the stored cursor before this run: its window starts below it
        self.context = context or {}  # added to each record before screening (a member's list id)
        self.seen: set[str] = set()
        self.bad_ids: list[str] = []
        self.holds: list[datetime] = []  # cursor values of quarantined records that lost their id

    def page(self, records: list[Any]) -> tuple[list[Record], list[Any]]:
        """(good records new to this listing, quarantine rows)."""
        good: list[Record] = []
        rows: list[Any] = []
        for record in records:
            if self.context and isinstance(record, dict):
                record = {**self.context, **record}
            reason = check(record, self.endpoint.rules)
            if reason is not None:
                rows.append(quarantine_row(self.endpoint.resource, record, reason))
                self._remember(record)
            elif record["id"] not in self.seen:
                self.seen.add(record["id"])
                good.append(record)
        return good, rows

    def _remember(self, record: Any) -> None:
        record_id = _id(record)
        if record_id is not None:
            self.bad_ids.append(record_id)
            return
        own = parse_timestamp(_path(record, self.endpoint.cursor_path)) if self.endpoint.cursor_path else None
        point = own or self.floor  # neither id nor cursor: read this run's window again
        if point is not None:
            self.holds.append(point)

    def missing_ids(self) -> list[str]:
        """Ids quarantined and not also received clean in this listing (a corrupted copy of a
        record loaded anyway needs no repair)."""
        return [i for i in dict.fromkeys(self.bad_ids) if i not in self.seen]

    def complete(self) -> bool:
        return not self.holds and not self.missing_ids()


def hold_cursor(cursor: Cursor, points: Iterable[datetime]) -> None:
    """After a run that quarantined records without an id, keep the stored cursor no later than
    the earliest of `points` so the next run's window reads them again (see common)."""
    common_hold_cursor(cursor, points, vendor=VENDOR, max_runs=REPAIR_RUNS)


def refetched(api: KlaviyoApi, endpoint: Endpoint, screen: Screen, params: Mapping[str, Any]) -> Iterator[list[Record]]:
    """The quarantined records that kept their id, fetched again one by one: a record corrupted in
    transit arrives clean. One still malformed stays in quarantine (its first copy is there)."""
    for record_id in screen.missing_ids():
        record = api.one(endpoint, record_id, params)
        if record is None:  # deleted since it was listed
            continue
        reason = check(record, endpoint.rules)
        if reason is None and _id(record) == record_id:
            screen.seen.add(record_id)
            yield [record]
        else:
            log.warning(
                "%s: %s %s is still malformed (%s); it stays in quarantine",
                VENDOR,
                endpoint.resource,
                record_id,
                reason,
            )


def changed_records(
    api: KlaviyoApi,
    endpoint: Endpoint,
    cursor: Cursor,
    params: Mapping[str, Any],
    to_row: Callable[[Record], Record],
    channel_filter: bool = False,
    fetch_params: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """The body of an incremental resource: records whose cursor attribute is after the stored
    cursor minus the lookback, oldest first, page by page; then the repairs."""
    assert endpoint.cursor is not None
    condition = f"greater-than({endpoint.cursor},{klaviyo_time(cursor.start_value)})"
    if channel_filter:
        condition = f"and({EMAIL_CHANNEL_FILTER},{condition})"
    screen = Screen(endpoint, floor=cursor.get_state()["last_value"])
    for page in api.pages(endpoint, {**params, "filter": condition, "sort": endpoint.cursor}):
        good, rows = screen.page(page)
        yield from rows
        if good:
            yield [to_row(record) for record in good]
    for records in refetched(api, endpoint, screen, fetch_params or {}):
        yield [to_row(record) for record in records]
    hold_cursor(cursor, screen.holds)


def all_records(
    api: KlaviyoApi, endpoint: Endpoint, params: Mapping[str, Any], to_row: Callable[[Record], Record]
) -> Iterator[Any]:
    """The body of a small collection read whole every run (lists, metrics): a record quarantined
    in one run is read again by the next."""
    screen = Screen(endpoint)
    for page in api.pages(endpoint, params):
        good, rows = screen.page(page)
        yield from rows
        if good:
            yield [to_row(record) for record in good]


def _marker(list_id: str) -> Record:
    """A row that makes dlt delete a list's members and is itself never stored."""
    return {"list_id": list_id, "profile_id": "", "list_emptied": True}


@dataclass
class ListRead:
    members: list[Record]  # (list_id, profile_id, joined_group_at), each member once
    quarantined: list[Any]
    clean: bool  # every member arrived well formed


# Known members' join times, from the table as loaded: list id -> {profile id: joined_group_at}.
LoadedMembers = Callable[[str], Mapping[str, Any]]


def _whole_list(api: KlaviyoApi, list_id: str, page_size: int) -> ListRead:
    """A list's members with their join times, from Get List Profiles (100 a page)."""
    screen = Screen(LIST_MEMBERS, context={"list_id": list_id})
    read = ListRead([], [], True)
    for page in api.pages(LIST_MEMBERS, {"fields[profile]": "joined_group_at", "page[size]": page_size}, list_id):
        good, rows = screen.page(page)
        read.members += [member_row(record) for record in good]
        read.quarantined += rows
    read.clean = screen.complete()
    return read


def _list_by_ids(
    api: KlaviyoApi, list_id: str, page_size: int, ids_page_size: int, since: datetime, loaded: Mapping[str, Any]
) -> ListRead | None:
    """A list's members as ids (100 a page), with the join times of those who joined since
    `since` read from Get List Profiles and the others' from the table as loaded. None when a
    member's join time is known from neither (then the list is read whole): one who joined
    between the two reads, or a table that lost rows."""
    ids = Screen(LIST_MEMBER_IDS, context={"list_id": list_id})
    read = ListRead([], [], True)
    members: list[str] = []
    # Ids first: a member who joins between the reads is then left for the next run.
    for page in api.pages(LIST_MEMBER_IDS, {"page[size]": ids_page_size}, list_id):
        good, rows = ids.page(page)
        members += [record["id"] for record in good]
        read.quarantined += rows
    joins = Screen(LIST_MEMBERS, context={"list_id": list_id})
    joined: dict[str, Any] = {}
    params = {
        "fields[profile]": "joined_group_at",
        "filter": f"greater-or-equal(joined_group_at,{klaviyo_time(since)})",
        "page[size]": page_size,
    }
    for page in api.pages(LIST_MEMBERS, params, list_id):
        good, rows = joins.page(page)
        joined.update((row["profile_id"], row["joined_group_at"]) for row in map(member_row, good))
        read.quarantined += rows
    for profile_id in members:
        at = joined.get(profile_id) or loaded.get(profile_id)
        if at is None:
            return None
        read.members.append({"list_id": list_id, "profile_id": profile_id, "joined_group_at": at})
    read.clean = ids.complete() and joins.complete()
    return read


def list_membership_rows(
    api: KlaviyoApi, page_size: int, ids_page_size: int, loaded_members: LoadedMembers
) -> Iterator[Any]:
    """Every list's current members, a whole list at a time.

    The table is merged with `list_id` as merge key, so each list yielded replaces that list's
    rows: a member removed in Klaviyo disappears from the table on the next run. A list now empty,
    deleted, or gone from the listing is cleared by a marker row. A list whose members did not all
    arrive clean keeps its previous rows for up to `REPAIR_RUNS` runs (replacing it would drop the
    members in quarantine as if they had left), then is replaced with what arrived clean.

    Klaviyo has no feed of removals, so who is in a list is read whole every run, but as ids
    only (100 a page, the endpoint's maximum: a list of 475,000 is 4,750 pages, about 6.5 min at
    its 750 a minute). Join times come from the joins since the list's last read
    (less `LOOKBACK_SECONDS`) and, for earlier members, from the table as loaded. A list read for
    the first time is read whole with its join times."""
    state = dlt.current.resource_state()
    known = set(state.get("list_ids") or [])
    unclean: dict[str, int] = state.setdefault("unclean_runs", {})
    # The newest join time read per list: the next run reads joins from there (less the lookback).
    through: dict[str, str] = state.setdefault("joined_through", {})

    list_ids: list[str] = []
    listing_complete = True
    for page in api.pages(LISTS, {}):
        for record in page:
            list_id = _id(record)
            if list_id is None:
                listing_complete = False  # quarantined by the `lists` resource
            elif list_id not in list_ids:
                list_ids.append(list_id)

    for list_id in list_ids:
        try:
            read = None
            if list_id in through:
                since = datetime.fromisoformat(through[list_id]) - timedelta(seconds=LOOKBACK_SECONDS)
                read = _list_by_ids(api, list_id, page_size, ids_page_size, since, loaded_members(list_id))
                if read is None:
                    log.info("%s: list %s: a member's join time is unknown; reading the list whole", VENDOR, list_id)
            if read is None:
                read = _whole_list(api, list_id, page_size)
        except ListGone:
            unclean.pop(list_id, None)
            through.pop(list_id, None)
            yield [_marker(list_id)]
            continue
        yield from read.quarantined
        if not read.clean:
            runs = unclean.get(list_id, 0) + 1
            if runs <= REPAIR_RUNS:
                unclean[list_id] = runs
                through.pop(list_id, None)  # the repair reads the list whole
                log.warning("%s: list %s: members arrived malformed; its previous members are kept", VENDOR, list_id)
                continue
            log.warning("%s: list %s: members still malformed after %d runs", VENDOR, list_id, REPAIR_RUNS)
        unclean.pop(list_id, None)
        newest = max((m["joined_group_at"] for m in read.members if m["joined_group_at"] is not None), default=None)
        if newest is not None:
            through[list_id] = newest.isoformat()
        yield read.members or [_marker(list_id)]

    if listing_complete:
        gone = sorted(known - set(list_ids))
        if gone:
            yield [_marker(list_id) for list_id in gone]
        for list_id in gone:
            through.pop(list_id, None)
        state["list_ids"] = sorted(list_ids)
    else:
        state["list_ids"] = sorted(known | set(list_ids))


# -- rows ----------------------------------------------------------------------------------------


def _timestamps(row: Record, *names: str) -> Record:
    for name in names:
        parsed = parse_timestamp(row.get(name))
        row[name] = parsed.astimezone(UTC) if parsed is not None else None
    return row


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _related_id(record: Record, name: str) -> str | None:
    data = ((record.get("relationships") or {}).get(name) or {}).get("data")
    return data.get("id") if isinstance(data, dict) else None


def profile_row(record: Record) -> Record:
    """Attributes as columns (`location` flattened by dlt into `location__*`), custom `properties`
    as JSON, and email/SMS marketing consent and suppressions as columns."""
    attributes = dict(record.get("attributes") or {})
    subscriptions = attributes.pop("subscriptions", None) or {}
    row = {"id": record["id"], **attributes}
    _timestamps(row, "created", "updated", "last_event_date")
    location = row.get("location")
    if isinstance(location, dict):
        # Klaviyo types coordinates as "number or string"; one column type either way.
        row["location"] = {
            **location,
            "latitude": _number(location.get("latitude")),
            "longitude": _number(location.get("longitude")),
        }
    email = (subscriptions.get("email") or {}).get("marketing") or {}
    sms = (subscriptions.get("sms") or {}).get("marketing") or {}
    suppression = email.get("suppression") or []
    reasons = sorted({s.get("reason") for s in suppression if isinstance(s, dict) and s.get("reason")})
    row.update(
        email_marketing_consent=email.get("consent"),
        email_marketing_consent_timestamp=email.get("consent_timestamp"),
        email_marketing_method=email.get("method"),
        email_marketing_method_detail=email.get("method_detail"),
        email_marketing_double_optin=email.get("double_optin"),
        email_marketing_last_updated=email.get("last_updated"),
        can_receive_email_marketing=email.get("can_receive_email_marketing"),
        email_suppression_reasons=",".join(reasons) or None,
        email_suppression=suppression,
        email_list_suppressions=email.get("list_suppressions") or [],
        sms_marketing_consent=sms.get("consent"),
        can_receive_sms_marketing=sms.get("can_receive_sms_marketing"),
    )
    return _timestamps(row, "email_marketing_consent_timestamp", "email_marketing_last_updated")


def list_row(record: Record) -> Record:
    return _timestamps({"id": record["id"], **(record.get("attributes") or {})}, "created", "updated")


def member_row(record: Record) -> Record:
    joined = (record.get("attributes") or {}).get("joined_group_at")
    return _timestamps(
        {"list_id": record["list_id"], "profile_id": record["id"], "joined_group_at": joined}, "joined_group_at"
    )


def metric_row(record: Record) -> Record:
    return _timestamps({"id": record["id"], **(record.get("attributes") or {})}, "created", "updated")


def campaign_row(record: Record) -> Record:
    row = {"id": record["id"], **(record.get("attributes") or {})}
    return _timestamps(row, "created_at", "scheduled_at", "updated_at", "send_time")


def event_row(record: Record) -> Record:
    """The event with its metric and profile ids, and the `$message` it came from as a column."""
    attributes = dict(record.get("attributes") or {})
    properties = attributes.pop("event_properties", None) or {}
    message = properties.get("$message") if isinstance(properties, dict) else None
    row = {
        "id": record["id"],
        **attributes,
        "metric_id": _related_id(record, "metric"),
        "profile_id": _related_id(record, "profile"),
        "message_id": str(message) if message not in (None, "") else None,
        "event_properties": properties,
    }
    return _timestamps(row, "datetime")
