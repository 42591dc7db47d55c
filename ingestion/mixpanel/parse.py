"""Blocks of export lines to Arrow tables, in bulk.

A block (complete JSONL lines, tens of MB) becomes one Arrow string column without copying
(the offsets are the newline positions), and DuckDB parses every line once with `from_json`
into typed, flattened columns. The properties no typed column carries are kept as JSON text in
`other_properties`, so a property the marts do not read yet (or one the vendor adds) is never
lost. (Not the whole object: repeating every typed value as text made the column half the
table's bytes and doubled the load.)

Bad lines never stop a block. The fast query assumes every line is JSON; when DuckDB refuses
the block (a line cut short in transit), the same query runs again with a per-line
`json_valid` guard, and only when even that fails (bytes that are not UTF-8) is the block
split line by line in Python. A line that is not JSON, has no insert id, no usable time, or
a non-numeric value in a numeric property is returned as rejected, with the reason
`ingestion.common.quarantine.check` gives, for the quarantine table.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.common.quarantine import RecordRules, check
from ingestion.mixpanel.settings import (
    BOOLEAN_PROPERTIES,
    DOUBLE_PROPERTIES,
    INTEGER_PROPERTIES,
    JSON_PROPERTIES,
    STRING_PROPERTIES,
)

RULES = RecordRules(
    primary_key=("properties.$insert_id",),
    timestamps=("properties.time",),
    numbers=tuple(f"properties.{name}" for name in ("time", *DOUBLE_PROPERTIES, *INTEGER_PROPERTIES)),
)
INVALID_JSON = "not valid JSON (a truncated or corrupt line)"
NOT_UTF8 = "not UTF-8 text"

# Rows per Arrow batch handed to DuckDB: several batches per block let it parse on every core.
_SCAN_BATCH_ROWS = 8192
# `properties.time` is epoch seconds; accept milliseconds too, as the quarantine rules do.
_EPOCH_MS_ABOVE = 1e11
# A number cut at the end of the fragment is not a time: require what follows a whole value.
_TIME_IN_FRAGMENT = re.compile(r'"time"\s*:\s*"?(\d{9,13})(?:\.\d+)?["\s,}]')


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _prop(name: str) -> str:
    return f"p[{_lit(name)}]"


def _build_query(guarded: bool, project_timezone: str | None = None) -> str:
    keys = ["$insert_id", "time", "mp_processing_time_ms"]
    keys += [key for _, key in STRING_PROPERTIES]
    keys += [*DOUBLE_PROPERTIES, *INTEGER_PROPERTIES, *BOOLEAN_PROPERTIES, *JSON_PROPERTIES]
    # Every property as VARCHAR: numbers keep their text, arrays their JSON, and a number the
    # vendor retyped as a string ("12.5") casts back exactly like a real one.
    shape = json.dumps({"event": "VARCHAR", "properties": {key: "VARCHAR" for key in keys}})
    parsed = f"from_json(line, {_lit(shape)})"
    # A JSON merge patch with null deletes those keys (RFC 7396): what is left is the rest.
    typed_removed = json.dumps(dict.fromkeys(keys))
    rest = f"json_merge_patch(json_extract(line, '$.properties'), {_lit(typed_removed)})::VARCHAR"
    if guarded:
        parsed = f"CASE WHEN json_valid(line) THEN {parsed} END"
        rest = f"CASE WHEN s IS NOT NULL THEN {rest} END"

    def epoch(text: str) -> str:
        value = f"TRY_CAST({text} AS DOUBLE)"
        return (
            f"CASE WHEN {value} >= 0 AND {value} < {_EPOCH_MS_ABOVE} THEN to_timestamp({value}) "
            f"WHEN {value} >= {_EPOCH_MS_ABOVE} AND {value} < 1e14 THEN to_timestamp({value} / 1000) END"
        )

    event_time = epoch(_prop("time"))
    if project_timezone:
        # A project created before 2023 exports `time` as seconds of its own wall clock: read
        # them as that zone's local time (the connection's TimeZone is UTC, so the cast to
        # TIMESTAMP keeps the digits), daylight saving included.
        event_time = f"timezone({_lit(project_timezone)}, ({event_time})::TIMESTAMP)"
    numbers = [*DOUBLE_PROPERTIES, *INTEGER_PROPERTIES]
    bad = [
        "p IS NULL",
        f"coalesce({_prop('$insert_id')}, '') = ''",
        "time IS NULL",
        *(f"({_prop(n)} IS NOT NULL AND TRY_CAST({_prop(n)} AS DOUBLE) IS NULL)" for n in numbers),
    ]
    columns = [
        f"{_prop('$insert_id')} AS insert_id",
        "event",
        "time",
        *(f"{_prop(key)} AS {column}" for column, key in STRING_PROPERTIES),
        *(f"TRY_CAST({_prop(n)} AS DOUBLE) AS {n}" for n in DOUBLE_PROPERTIES),
        *(f"TRY_CAST({_prop(n)} AS BIGINT) AS {n}" for n in INTEGER_PROPERTIES),
        *(f"TRY_CAST({_prop(n)} AS BOOLEAN) AS {n}" for n in BOOLEAN_PROPERTIES),
        f"{epoch(_prop('mp_processing_time_ms'))} AS processed_at",
        *(f"{_prop(n)} AS {n}" for n in JSON_PROPERTIES),
        "other_properties",
    ]
    return (
        f"WITH raw AS (SELECT rn, line, {parsed} AS s FROM lines), "
        f"flat AS (SELECT rn, s['event'] AS event, s['properties'] AS p, {rest} AS other_properties FROM raw), "
        f"timed AS (SELECT *, {event_time} AS time FROM flat) "
        f"SELECT rn, ({' OR '.join(bad)}) AS _bad, {', '.join(columns)} FROM timed"
    )


FAST_QUERY = _build_query(guarded=False)
GUARDED_QUERY = _build_query(guarded=True)


@dataclass
class ParsedBlock:
    events: pa.Table | None  # good events (repeats included); None when there are none
    rejected: list[tuple[object, str]] = field(default_factory=list)  # (record or raw line, reason)
    lines: int = 0


def lines_array(block: bytes | memoryview) -> pa.LargeStringArray:
    """The block's lines (each with its newline) as an Arrow string array over the same bytes."""
    data = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(data == 10) + 1
    if len(data) and (not len(ends) or ends[-1] != len(data)):
        ends = np.append(ends, len(data))
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    lines = pa.LargeStringArray.from_buffers(len(ends), pa.py_buffer(offsets), pa.py_buffer(block))
    blank = np.diff(offsets) <= 2
    if blank.any():  # an empty line ("\n" or "\r\n") is not an event; drop it rather than reject it
        blank &= np.array([not s.strip() for s in pa.array(lines, pa.large_binary()).to_pylist()], dtype=bool)
        lines = lines.filter(pa.array(~blank))
    return lines


def day_of_fragment(text: str) -> date | None:
    """The export day of a line cut short, when its `time` made it through (it comes first): the
    UTC day, or for a project on its own time zone (seconds of its wall clock) its local day."""
    found = _TIME_IN_FRAGMENT.search(text)
    if not found:
        return None
    value = float(found.group(1))
    return datetime.fromtimestamp(value / 1000 if value >= _EPOCH_MS_ABOVE else value, tz=UTC).date()


class BlockParser:
    """Parses blocks on one in-memory DuckDB connection (a small memory limit: a block is MBs)."""

    def __init__(self, memory_limit: str = "1GB", project_timezone: str | None = None) -> None:
        self._con = duckdb.connect(config={"memory_limit": memory_limit})
        self._con.execute("SET TimeZone = 'UTC'")
        self._fast, self._guarded = (
            (_build_query(False, project_timezone), _build_query(True, project_timezone))
            if project_timezone
            else (FAST_QUERY, GUARDED_QUERY)
        )

    def close(self) -> None:
        self._con.close()

    def parse(self, block: bytes | memoryview) -> ParsedBlock:
        lines = lines_array(block)
        if len(lines) == 0:
            return ParsedBlock(None)
        rejected: list[tuple[object, str]] = []
        try:
            result = self._run(self._fast, lines)
        except duckdb.Error:
            try:
                result = self._run(self._guarded, lines)
            except duckdb.Error:
                lines, rejected = _json_lines_only(lines)
                result = self._run(self._guarded, lines)
        bad = result.column("_bad")
        if pc.any(bad).as_py():
            bad = pc.fill_null(bad, True)
            raw = pa.array(lines, pa.large_binary())
            rejected += [_reject(raw[rn].as_py()) for rn in result.filter(bad).column("rn").to_pylist()]
            result = result.filter(pc.invert(bad))
        events = result.drop_columns(["rn", "_bad"])
        # The primary key has no nulls left; say so, as dlt's schema does for a primary key.
        key = events.schema.get_field_index("insert_id")
        events = events.cast(events.schema.set(key, events.schema.field(key).with_nullable(False)))
        return ParsedBlock(events if events.num_rows else None, rejected, len(lines))

    def _run(self, query: str, lines: pa.Array) -> pa.Table:
        batch = pa.table({"rn": pa.array(np.arange(len(lines), dtype=np.int64)), "line": lines})
        scan = pa.Table.from_batches(batch.to_batches(max_chunksize=_SCAN_BATCH_ROWS))
        self._con.register("lines", scan)
        try:
            return self._con.sql(query).to_arrow_table()
        finally:
            self._con.unregister("lines")


def _json_lines_only(lines: pa.LargeStringArray) -> tuple[pa.Array, list[tuple[object, str]]]:
    """Line by line, for a block DuckDB refused even with the per-line guard."""
    keep: list[str] = []
    rejected: list[tuple[object, str]] = []
    for raw in pa.array(lines, pa.large_binary()).to_pylist():
        record, reason = _reject(raw)
        if reason in (INVALID_JSON, NOT_UTF8):
            rejected.append((record, reason))
        else:
            keep.append(raw.decode("utf-8"))
    return pa.array(keep, pa.large_string()), rejected


def _reject(raw: bytes) -> tuple[object, str]:
    """The record (or the raw text when it is not JSON) and why it cannot be loaded."""
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace").rstrip("\r\n"), NOT_UTF8
    try:
        record = json.loads(text)
    except ValueError:
        return text, INVALID_JSON
    reason = check(copy.deepcopy(record), RULES)  # keep the record as the vendor sent it
    if reason is None:  # the rules accept a missing time; an event without one cannot be placed
        reason = "missing or out-of-range timestamp in properties.time"
    return record, reason


class SeenIds:
    """The insert ids already passed on in this run, so every id reaches the load once.

    Lines come twice within a block, across blocks, and again when a broken stream is exported
    anew. Dropping repeats here, exactly and for the whole run, lets the load insert what is
    new without de-duplicating (the costliest part of a merge); across runs the merge on the
    insert id does it. Holds about 100 bytes per event of the run.
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def first_seen(self, events: pa.Table) -> pa.Table:
        seen = self._seen
        ids = events.column("insert_id").to_pylist()
        if seen.isdisjoint(ids) and len(set(ids)) == len(ids):  # the usual block: set operations in C
            seen.update(ids)
            return events
        keep: list[bool] = []
        for insert_id in ids:
            keep.append(insert_id not in seen)
            seen.add(insert_id)
        return events.filter(pa.array(keep))
