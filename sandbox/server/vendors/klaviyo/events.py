"""Metrics, events and campaigns (reads), and Create Event (a write).

Events created through the API are stored as kind "event" and served by Get Events once
their `time` is at or before the clock; a metric name seen for the first time creates a
metric (kind "metric"), with the "API" integration, as Klaviyo does.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

import pyarrow as pa
import pyarrow.compute as pc
from starlette.responses import Response

from sandbox.server.cache import cache
from sandbox.server.state import SandboxState, format_ts
from sandbox.server.vendors.klaviyo import overlays, windows
from sandbox.server.vendors.klaviyo.api import VENDOR, Ctx, invalid, iso, jsonapi, not_found, parse_datetime
from sandbox.server.vendors.klaviyo.lists import new_list_id
from sandbox.server.vendors.klaviyo.profiles import (
    PROFILES,
    WRITE_LOCK,
    Upsert,
    render_profiles,
    resource_body,
    upsert_profile,
    validate_attributes,
)
from sandbox.server.vendors.klaviyo.query import (
    Collection,
    Row,
    fetch_one,
    ff,
    filter_mentions,
    list_response,
    parse_includes,
    query_rows,
    sparse,
)
from sandbox.server.vendors.klaviyo.windows import Slice, Windowed

#: Integration objects as Klaviyo reports them for its own metrics and for API-created ones.
_INTEGRATIONS = {
    "Klaviyo": {
        "object": "integration",
        "id": "0rG4eQ",
        "key": "klaviyo",
        "name": "Klaviyo",
        "category": "Internal",
    },
    "API": {"object": "integration", "id": "7FtS4J", "key": "api", "name": "API", "category": "API"},
}
_EVENT_IDS = uuid.UUID("8f6f8a4e-2c1d-4a7b-9a51-4b1c7e0d2f10")  # namespace for stable event uuids


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def _metric_source(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    overlays.use(ctx, overlays.METRICS)
    cases = " ".join(f"WHEN '{n}' THEN '{i['category']}'" for n, i in _INTEGRATIONS.items())
    sql = f"""
        SELECT *, CASE integration_name {cases} END AS integration_category FROM (
            SELECT metric_id AS id, name, integration AS integration_name,
                date_trunc('second', created_at) AS created, date_trunc('second', updated_at) AS updated
            FROM klaviyo_metrics WHERE created_at <= $clock
            UNION ALL
            SELECT id, name, 'API', date_trunc('second', created), date_trunc('second', updated)
            FROM {overlays.METRICS.name}
        )
    """
    return sql, {"clock": ctx.state.clock}


def _render_metrics(ctx: Ctx, rows: list[Row]) -> list[dict[str, Any]]:
    return [
        {
            "type": "metric",
            "id": row["id"],
            "attributes": sparse(
                ctx,
                "metric",
                {
                    "name": row["name"],
                    "created": iso(row["created"]),
                    "updated": iso(row["updated"]),
                    "integration": _INTEGRATIONS.get(row["integration_name"]),
                },
            ),
            "relationships": {
                "flow-triggers": {
                    "links": {
                        "self": ctx.link(f"/api/metrics/{row['id']}/relationships/flow-triggers"),
                        "related": ctx.link(f"/api/metrics/{row['id']}/flow-triggers"),
                    }
                },
            },
            "links": {"self": ctx.link(f"/api/metrics/{row['id']}")},
        }
        for row in rows
    ]


METRICS = Collection(
    name="metrics",
    source=_metric_source,
    render=_render_metrics,
    filters={
        "integration.name": ff("integration_name", "string", "equals"),
        "integration.category": ff("integration_category", "string", "equals"),
    },
    default_size=200,  # Get Metrics: at most 200 per page, no page[size]
    page_size_param=False,
    timestamp_field="attributes.updated",
)


def get_metrics(ctx: Ctx) -> Response:
    return list_response(ctx, METRICS)


def get_metric(ctx: Ctx) -> Response:
    mid = ctx.request.path_params["id"]
    row = fetch_one(ctx, METRICS, mid)
    if row is None:
        raise not_found(f"A metric with id {mid} does not exist.")
    return jsonapi({"data": _render_metrics(ctx, [row])[0], "links": {"self": ctx.link(f"/api/metrics/{mid}")}})


#: Metric id per (name, clock) per served world: a metric found or made stays the oldest of
#: its name until the clock moves (a store metric can only appear when it does).
_METRIC_IDS: WeakKeyDictionary[SandboxState, dict[tuple[str, datetime], str]] = WeakKeyDictionary()
#: Serializes finding or making a metric, so two writes of a new name make one metric.
_METRIC_LOCK = threading.Lock()


def metric_for(ctx: Ctx, name: str) -> str:
    """The id of the metric with this name, created (integration "API") if new."""
    with _METRIC_LOCK:
        known = _METRIC_IDS.setdefault(ctx.state, {})
        clock = ctx.state.clock
        if (name, clock) not in known:
            known[(name, clock)] = _find_or_create_metric(ctx, name)
        return known[(name, clock)]


def metric_ids_for(ctx: Ctx, names: set[str]) -> dict[str, str]:
    """`metric_for` each name, without the profiles' write lock: a bulk events request then
    never waits for an import job that holds it."""
    return {name: metric_for(ctx, name) for name in names}


def _find_or_create_metric(ctx: Ctx, name: str) -> str:
    relation, params = _metric_source(ctx)
    found = (
        ctx.db()
        .execute(
            f"SELECT id FROM ({relation}) AS m WHERE name = $name ORDER BY created, id LIMIT 1",
            {**params, "name": name},
        )
        .fetchall()
    )
    if found:
        return found[0][0]
    metric_id = new_list_id()
    overlays.put(ctx, overlays.METRICS, metric_id, {"name": name})
    return metric_id


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


def _event_sql(store: str, written: str) -> str:
    """Visible events of the store's table `store` and the event overlay's `written`."""
    return f"""
        SELECT id, metric_id, profile_id, date_trunc('second', datetime) AS datetime,
            CAST(epoch(date_trunc('second', datetime)) AS BIGINT) AS timestamp, properties
        FROM (
            SELECT event_id AS id, metric_id, profile_id, datetime, properties FROM {store}
            UNION ALL
            SELECT id, metric_id, profile_id, datetime, properties FROM {written}
        ) WHERE datetime <= $clock AND profile_id NOT IN (SELECT id FROM {overlays.DELETED.name})
    """


def _event_source(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    """Visible events; those of a profile deleted through the API went with it."""
    overlays.use(ctx, overlays.EVENTS, overlays.DELETED)
    return _event_sql("klaviyo_events", overlays.EVENTS.name), {"clock": ctx.state.clock}


#: Store columns a page serves; the repeating ones are kept dictionary-encoded.
_STORE_EVENT_COLUMNS = ("event_id", "metric_id", "profile_id", "datetime", "properties")
_REPEATING = frozenset({"metric_id", "profile_id", "properties"})
_READ_ROWS = 1 << 17
_STORE_WINDOW = "klaviyo_event_store_window"
_WRITTEN_WINDOW = "klaviyo_event_overlay_window"


def _sort_events(table: pa.Table, id_column: str) -> pa.Table:
    """Events in (second, id) order, the order of both sorts (`timestamp` is the second's
    epoch)."""
    # Floored to the second in UTC: date_trunc('second', ...) as the page's query computes it.
    seconds = pc.floor_temporal(table["datetime"], unit="second")
    order = pc.sort_indices(
        pa.table({"s": seconds, "i": table[id_column]}), sort_keys=[("s", "ascending"), ("i", "ascending")]
    )
    return table.take(order).combine_chunks()


def _store_events(ctx: Ctx) -> pa.Table:
    """Every store event, visible yet or not, in order: read once per served world (the store
    does not change while served; the clock is applied per page). At a million customers that
    is 4.7M events, about 250 MB with the repeating text dictionary-encoded, read and sorted
    in seconds once instead of every page ordering all of them."""

    def build() -> pa.Table:
        columns = ", ".join(_STORE_EVENT_COLUMNS)
        reader = ctx.db().sql(f"SELECT {columns} FROM klaviyo_events").to_arrow_reader(_READ_ROWS)
        batches = [_encoded(batch) for batch in reader]
        if not batches:
            return _sort_events(reader.schema.empty_table(), "event_id")
        table = pa.Table.from_batches(batches).unify_dictionaries().combine_chunks()
        del batches
        events = _sort_events(table, "event_id")
        del table
        pa.default_memory_pool().release_unused()  # the sort's copies: as much again
        return events

    return cache(ctx.state).get("store_events", (), build)


def _encoded(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch from DuckDB with the repeating text dictionary-encoded and the rest copied:
    a column exported by DuckDB keeps its whole batch alive (properties text included)."""
    names = batch.schema.names
    columns = [
        c.dictionary_encode() if n in _REPEATING else pa.concat_arrays([c])
        for n, c in zip(names, batch.columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, names=names)


def _event_windows(ctx: Ctx, sort_sql: str) -> Windowed | None:
    """Store events and events written through the API, each in (second, id) order: a page
    takes a window of each, and the event query runs over those."""
    store = _store_events(ctx)
    written_table, _ = overlays.use(ctx, overlays.EVENTS, overlays.DELETED)
    written = cache(ctx.state).get("written_events", (written_table,), lambda: _sort_events(written_table, "id"))
    clock = ctx.state.clock
    convert = _epoch_second if sort_sql == "timestamp" else _second
    parts = []
    for events, id_column in ((store, "event_id"), (written, "id")):
        # Events of a later second than the clock's can never show.
        future = windows.part(events["datetime"], events[id_column], convert=_second)
        if future is None:
            return None
        stop = future.first_key_above(_second(clock))
        parts.append(windows.Part(future.keys, future.ids, convert, stop))

    def relation(slices: list[Slice]) -> tuple[str, dict[str, Any]]:
        for name, events, (lo, hi) in zip((_STORE_WINDOW, _WRITTEN_WINDOW), (store, written), slices, strict=True):
            ctx.overlay(name, events.slice(lo, hi - lo))
        return _event_sql(_STORE_WINDOW, _WRITTEN_WINDOW), {"clock": clock}

    return Windowed(parts, relation)


def _second(at: datetime) -> datetime:
    """`datetime` as a page shows it: the second (UTC, whole seconds)."""
    return at.replace(microsecond=0)


def _epoch_second(at: datetime) -> int:
    """`timestamp` as a page shows it: the second's epoch."""
    return int(_second(at).timestamp())


def _event_datetime(ts: datetime) -> str:
    """Events show `datetime` with a space separator ("2023-07-24 20:15:57+00:00"), unlike
    the `T` form of other Klaviyo timestamps."""
    return ts.astimezone(UTC).replace(microsecond=0).isoformat(sep=" ")


def _render_events(ctx: Ctx, rows: list[Row]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        eid = row["id"]
        relationships = {
            rel: {
                "data": {"type": rel, "id": row[f"{rel}_id"]},
                "links": {
                    "self": ctx.link(f"/api/events/{eid}/relationships/{rel}"),
                    "related": ctx.link(f"/api/events/{eid}/{rel}"),
                },
            }
            for rel in ("profile", "metric")
        }
        out.append(
            {
                "type": "event",
                "id": eid,
                "attributes": sparse(
                    ctx,
                    "event",
                    {
                        "timestamp": row["timestamp"],
                        "event_properties": json.loads(row["properties"] or "{}"),
                        "datetime": _event_datetime(row["datetime"]),
                        "uuid": str(uuid.uuid5(_EVENT_IDS, eid)),
                    },
                ),
                "relationships": relationships,
                "links": {"self": ctx.link(f"/api/events/{eid}")},
            }
        )
    return out


_COMPARISONS = ("greater-or-equal", "greater-than", "less-or-equal", "less-than")

EVENTS = Collection(
    name="events",
    source=_event_source,
    render=_render_events,
    filters={
        "metric_id": ff("metric_id", "string", "equals"),
        "profile_id": ff("profile_id", "string", "equals"),
        "profile": ff("profile_id", "relationship", "has"),
        "metric": ff("metric_id", "relationship", "has"),
        "datetime": ff("datetime", "datetime", *_COMPARISONS),
        "timestamp": ff("timestamp", "number", *_COMPARISONS),
    },
    sorts={"datetime": "datetime", "timestamp": "timestamp"},
    default_sort="datetime",
    default_size=200,
    max_size=1000,
    timestamp_field="attributes.datetime",
    numeric_field="attributes.timestamp",
    windows=_event_windows,
)


def _by_ids(ctx: Ctx, coll: Collection, ids: set[str]) -> list[Row]:
    if not ids:
        return []
    relation, params = coll.source(ctx)
    sql = f"SELECT * FROM ({relation}) AS r WHERE id IN (SELECT unnest($ids)) ORDER BY id"
    return query_rows(ctx, sql, {**params, "ids": sorted(ids)})


def _event_includes(ctx: Ctx, rows: list[Row]) -> list[dict[str, Any]]:
    wanted = parse_includes(ctx, {"metric", "profile"})
    included: list[dict[str, Any]] = []
    if "metric" in wanted:
        included += _render_metrics(ctx, _by_ids(ctx, METRICS, {r["metric_id"] for r in rows}))
    if "profile" in wanted:
        included += render_profiles(ctx, _by_ids(ctx, PROFILES, {r["profile_id"] for r in rows}))
    return included


def get_events(ctx: Ctx) -> Response:
    parse_includes(ctx, {"metric", "profile"})  # reject a bad include before any work
    return list_response(ctx, EVENTS, included=_event_includes if ctx.query.get("include") else None)


def get_event(ctx: Ctx) -> Response:
    eid = ctx.request.path_params["id"]
    row = fetch_one(ctx, EVENTS, eid)
    if row is None:
        raise not_found(f"An event with id {eid} does not exist.")
    return jsonapi({"data": _render_events(ctx, [row])[0], "links": {"self": ctx.link(f"/api/events/{eid}")}})


def nested_data(attributes: dict[str, Any], name: str, expected_type: str) -> dict[str, Any]:
    data = (attributes.get(name) or {}).get("data") if isinstance(attributes.get(name), dict) else None
    if not isinstance(data, dict) or data.get("type") != expected_type:
        raise invalid(
            f'`{name}` must be {{"data": {{"type": "{expected_type}", ...}}}}.',
            pointer=f"/data/attributes/{name}/data",
        )
    return data


def create_event(ctx: Ctx) -> Response:
    """POST /api/events: 202 with no body. Creates or updates the profile it names (by id,
    email, phone number or external id) and the metric (by name); `unique_id` deduplicates."""
    body = ctx.body()
    attributes = resource_body(body, "event").get("attributes") or {}
    properties = attributes.get("properties")
    if not isinstance(properties, dict):
        raise invalid("`properties` is required and must be an object.", pointer="/data/attributes/properties")
    metric = nested_data(attributes, "metric", "metric")
    name = (metric.get("attributes") or {}).get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid("The metric name is required.", pointer="/data/attributes/metric/data/attributes/name")
    profile = nested_data(attributes, "profile", "profile")
    pointer = "/data/attributes/profile/data/attributes"
    profile_attributes = validate_attributes(profile.get("attributes") or {}, pointer)
    when = ctx.state.clock
    if attributes.get("time") is not None:
        try:
            when = parse_datetime(str(attributes["time"]))
        except ValueError:
            raise invalid("`time` must be an ISO 8601 datetime.", pointer="/data/attributes/time") from None
    value = attributes.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise invalid("`value` must be a number.", pointer="/data/attributes/value")
    unique_id = attributes.get("unique_id")

    profile_id, _ = upsert_profile(ctx, Upsert(profile_attributes, profile.get("id"), pointer))
    with WRITE_LOCK:
        metric_id = metric_for(ctx, name)
        event_id = str(uuid.uuid4())
        key = f"{metric_id}:{profile_id}:{unique_id}" if unique_id else event_id
        if ctx.state.destinations.get(VENDOR, "event", key) is None:
            stored = {**properties, **({"$value": value} if value is not None else {})}
            payload = {
                "event_id": event_id,
                "metric_id": metric_id,
                "profile_id": profile_id,
                "datetime": format_ts(when),
                "properties": stored,
            }
            overlays.put(ctx, overlays.EVENTS, key, payload)
    ctx.state.destinations.record(VENDOR, "event_create", key, body)
    return jsonapi(None, 202)


# --------------------------------------------------------------------------------------------
# Campaigns
# --------------------------------------------------------------------------------------------


def _campaign_source(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    """Campaigns exist once sent (`send_time` at or before the clock); all are email."""
    sql = """
        SELECT campaign_id AS id, name, subject, list_id, status, FALSE AS archived, 'email' AS channel,
            date_trunc('second', created_at) AS created_at, date_trunc('second', created_at) AS scheduled_at,
            date_trunc('second', updated_at) AS updated_at, date_trunc('second', send_time) AS send_time
        FROM klaviyo_campaigns WHERE send_time <= $clock
    """
    return sql, {"clock": ctx.state.clock}


def _render_campaigns(ctx: Ctx, rows: list[Row]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        cid = row["id"]
        attributes = {
            "name": row["name"],
            "status": row["status"],
            "archived": row["archived"],
            "audiences": {"included": [row["list_id"]], "excluded": []},
            "send_options": {"use_smart_sending": True},
            "tracking_options": {
                "add_tracking_params": False,
                "custom_tracking_params": None,
                "is_tracking_clicks": True,
                "is_tracking_opens": True,
            },
            "send_strategy": {
                "method": "static",
                "datetime": iso(row["send_time"]),
                "options": {"is_local": False, "send_past_recipients_immediately": None},
            },
            "created_at": iso(row["created_at"]),
            "scheduled_at": iso(row["scheduled_at"]),
            "updated_at": iso(row["updated_at"]),
            "send_time": iso(row["send_time"]),
        }
        out.append(
            {
                "type": "campaign",
                "id": cid,
                "attributes": sparse(ctx, "campaign", attributes),
                "relationships": {
                    rel: {
                        "links": {
                            "self": ctx.link(f"/api/campaigns/{cid}/relationships/{rel}"),
                            "related": ctx.link(f"/api/campaigns/{cid}/{rel}"),
                        }
                    }
                    for rel in ("campaign-messages", "tags")
                },
                "links": {"self": ctx.link(f"/api/campaigns/{cid}")},
            }
        )
    return out


CAMPAIGNS = Collection(
    name="campaigns",
    source=_campaign_source,
    render=_render_campaigns,
    filters={
        "id": ff("id", "string", "any"),
        "messages.channel": ff("channel", "string", "equals"),
        "name": ff("name", "string", "contains"),
        "status": ff("status", "string", "any", "equals"),
        "archived": ff("archived", "boolean", "equals"),
        **{f: ff(f, "datetime", *_COMPARISONS) for f in ("created_at", "scheduled_at", "updated_at")},
    },
    sorts={n: n for n in ("id", "name", "created_at", "scheduled_at", "updated_at")},
    default_size=100,
    timestamp_field="attributes.updated_at",
)


def get_campaigns(ctx: Ctx) -> Response:
    """Get Campaigns requires a channel filter, e.g. equals(messages.channel,'email')."""
    channel = filter_mentions(ctx.query.get("filter"), "equals", "messages.channel")
    if channel not in ("email", "sms", "mobile_push"):
        raise invalid(
            "A channel filter is required to list campaigns. Please provide either "
            "?filter=equals(messages.channel,'email') to list email campaigns, "
            "?filter=equals(messages.channel,'sms') to list SMS campaigns, or "
            "?filter=equals(messages.channel,'mobile_push') to list mobile push campaigns.",
            parameter="filter",
        )
    return list_response(ctx, CAMPAIGNS)


def get_campaign(ctx: Ctx) -> Response:
    cid = ctx.request.path_params["id"]
    row = fetch_one(ctx, CAMPAIGNS, cid)
    if row is None:
        raise not_found(f"A campaign with id {cid} does not exist.")
    return jsonapi({"data": _render_campaigns(ctx, [row])[0], "links": {"self": ctx.link(f"/api/campaigns/{cid}")}})
