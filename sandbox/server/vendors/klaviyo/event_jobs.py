"""Bulk Create Events (`POST /api/event-bulk-create-jobs`): up to 1,000 events per request.

Each entry names one profile (created or updated as Create Event does) and its events. The
whole request is checked before anything is written: a malformed entry is a 400 pointing into
it, as Klaviyo validates the payload when it accepts the job. Accepted jobs answer 202 with no
body and are applied while the POST is answered (Klaviyo processes them shortly after).
Events de-duplicate on (metric, profile, `unique_id`) like Create Event.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.responses import Response

from sandbox.server.state import collection_paused, format_ts
from sandbox.server.vendors.klaviyo import overlays
from sandbox.server.vendors.klaviyo.api import VENDOR, Ctx, KlaviyoError, invalid, jsonapi, parse_datetime
from sandbox.server.vendors.klaviyo.events import metric_ids_for, nested_data
from sandbox.server.vendors.klaviyo.profiles import (
    Upsert,
    profile_ids_by_email,
    resource_body,
    upsert_profiles,
    validate_attributes,
)

#: Requests are worked one at a time, in about the order they came: shared by turns, ten
#: requests that arrive together (a client's burst) are all answered as late as the last.
_ONE_REQUEST_AT_A_TIME = threading.Lock()


class _EventsFirst:
    """Bulk events requests go before the import job being worked. Under Klaviyo's limits a
    client sends events request i+10 a second after request i is answered, so every delay
    in answering one is added to all that follow it; an import job is waited for only by
    the events of its own profiles, which come later. While a bulk events request is being
    worked, an import job pauses at the points where it holds no lock such a request needs
    (at most `limit` seconds at each, so an endless stream of events cannot stop it)."""

    def __init__(self, limit: float = 0.25) -> None:
        self._limit = limit
        self._cond = threading.Condition()
        self._working = 0

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        with self._cond:
            self._working += 1
        try:
            yield
        finally:
            with self._cond:
                self._working -= 1
                if not self._working:
                    self._cond.notify_all()

    def give_way(self) -> None:
        """Wait while bulk events requests are being worked (called by an import job)."""
        with self._cond:
            if self._working:
                self._cond.wait_for(lambda: not self._working, timeout=self._limit)


EVENTS_FIRST = _EventsFirst()
#: Bulk Create Events: at most 1,000 events and 5 MB per request.
MAX_EVENTS = 1000
MAX_BYTES = 5 * 1024 * 1024


@dataclass(slots=True)
class _Event:
    metric: str
    properties: dict[str, Any]
    when: datetime
    value: float | int | None
    unique_id: str | None


def _nested(attributes: dict[str, Any], name: str, expected_type: str) -> dict[str, Any]:
    """`events.nested_data` inlined for the loop over a request's entries (same checks and
    the same error)."""
    outer = attributes.get(name)
    data = outer.get("data") if isinstance(outer, dict) else None
    if not isinstance(data, dict) or data.get("type") != expected_type:
        return nested_data(attributes, name, expected_type)  # raises the error
    return data


def _event(item: Any, now: datetime, pointer: str) -> _Event:
    if not isinstance(item, dict) or item.get("type") != "event":
        raise invalid("Each event must be a resource object of type 'event'.", pointer=f"{pointer}/type")
    attributes = item.get("attributes") or {}
    properties = attributes.get("properties")
    if not isinstance(properties, dict):
        raise invalid("`properties` is required and must be an object.", pointer=f"{pointer}/attributes/properties")
    metric = _nested(attributes, "metric", "metric")
    name = (metric.get("attributes") or {}).get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid("The metric name is required.", pointer=f"{pointer}/attributes/metric/data/attributes/name")
    when = now
    if attributes.get("time") is not None:
        try:
            when = parse_datetime(str(attributes["time"]))
        except ValueError:
            raise invalid("`time` must be an ISO 8601 datetime.", pointer=f"{pointer}/attributes/time") from None
    value = attributes.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise invalid("`value` must be a number.", pointer=f"{pointer}/attributes/value")
    unique_id = attributes.get("unique_id")
    if unique_id is not None and not isinstance(unique_id, str):
        raise invalid("`unique_id` must be a string.", pointer=f"{pointer}/attributes/unique_id")
    return _Event(name, properties, when, value, unique_id)


def _entries(ctx: Ctx, body: dict[str, Any]) -> list[tuple[Upsert, list[_Event]]]:
    data = resource_body(body, "event-bulk-create-job")
    base = "/data/attributes/events-bulk-create/data"
    entries = ((data.get("attributes") or {}).get("events-bulk-create") or {}).get("data")
    if not isinstance(entries, list) or not entries:
        raise invalid("`events-bulk-create.data` must be a non-empty array.", pointer=base)
    out: list[tuple[Upsert, list[_Event]]] = []
    total = 0
    now = ctx.state.clock  # one instant for the request's events that give no time
    for i, entry in enumerate(entries):
        pointer = f"{base}/{i}"
        if not isinstance(entry, dict) or entry.get("type") != "event-bulk-create":
            raise invalid(
                "Each entry must be a resource object of type 'event-bulk-create'.", pointer=f"{pointer}/type"
            )
        attributes = entry.get("attributes") or {}
        profile = _nested(attributes, "profile", "profile")
        profile_pointer = f"{pointer}/attributes/profile/data/attributes"
        profile_attributes = validate_attributes(profile.get("attributes") or {}, profile_pointer)
        events = attributes.get("events")
        events = (events or {}).get("data") if isinstance(events, dict) else None
        if not isinstance(events, list) or not events:
            raise invalid("`events.data` must be a non-empty array.", pointer=f"{pointer}/attributes/events/data")
        total += len(events)
        if total > MAX_EVENTS:
            raise invalid(f"A request may contain at most {MAX_EVENTS} events.", pointer=base)
        parsed = [_event(e, now, f"{pointer}/attributes/events/data/{j}") for j, e in enumerate(events)]
        out.append((Upsert(profile_attributes, profile.get("id"), profile_pointer), parsed))
    return out


def _profile_ids(ctx: Ctx, upserts: list[Upsert]) -> list[str]:
    """The profile of each entry. Entries that only name an existing profile by email are
    looked up (no write); the others are created or updated as Create Event does."""
    ids: list[str | None] = [None] * len(upserts)
    named: list[tuple[int, str]] = []
    for i, u in enumerate(upserts):
        attributes = u.attributes
        if u.profile_id is None and len(attributes) == 1 and "email" in attributes:
            named.append((i, attributes["email"].lower()))
    found = profile_ids_by_email(ctx, [email for _, email in named])
    for i, email in named:
        ids[i] = found.get(email)
    rest = [i for i, pid in enumerate(ids) if pid is None]
    if not rest:
        return [pid for pid in ids if pid is not None]
    for i, result in zip(rest, upsert_profiles(ctx, [upserts[i] for i in rest]), strict=True):
        if isinstance(result, KlaviyoError):
            raise result
        ids[i] = result[0]
    return [pid for pid in ids if pid is not None]


def create_event_bulk_job(ctx: Ctx) -> Response:
    """POST /api/event-bulk-create-jobs: 202, no body."""
    with EVENTS_FIRST.working():  # from the first byte read: the body's reading waits on the GIL too
        if len(ctx.raw_body()) > MAX_BYTES:
            raise KlaviyoError(413, "The request payload may not exceed 5 MB.", code="request_too_large")
        with _ONE_REQUEST_AT_A_TIME, collection_paused():
            return _event_bulk_job(ctx)


def _event_bulk_job(ctx: Ctx) -> Response:
    """The request checked whole, then applied."""
    body = ctx.body()
    entries = _entries(ctx, body)
    profile_ids = _profile_ids(ctx, [upsert for upsert, _ in entries])
    items: list[tuple[str, dict[str, Any]]] = []
    stamps: dict[datetime, str] = {}
    batch = uuid.uuid4().hex[:24]  # event ids: one random prefix per request, then a counter
    # No write lock: events only add rows, de-duplicated inside `put_many`.
    metric_ids = metric_ids_for(ctx, {event.metric for _, events in entries for event in events})
    for (_, events), profile_id in zip(entries, profile_ids, strict=True):
        for event in events:
            metric_id = metric_ids[event.metric]
            event_id = f"{batch}{len(items):04d}"
            key = f"{metric_id}:{profile_id}:{event.unique_id}" if event.unique_id else event_id
            stored = event.properties if event.value is None else {**event.properties, "$value": event.value}
            payload = {
                "event_id": event_id,
                "metric_id": metric_id,
                "profile_id": profile_id,
                "datetime": stamps.get(event.when) or stamps.setdefault(event.when, format_ts(event.when)),
                "properties": stored,
            }
            items.append((key, payload))
    overlays.put_many(ctx, overlays.EVENTS, items, keep_existing=True)
    ctx.state.destinations.record(VENDOR, "event_bulk_create_job", None, ctx.raw_body())
    return jsonapi(None, 202)
