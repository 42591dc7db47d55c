"""Quarantine: a record that cannot be loaded correctly is set aside with its reason, never dropped.

Each resource states the few things its records must satisfy (a primary key, parseable
timestamps, numeric fields) in `RecordRules`. `screen()` passes good records on and routes
bad ones to the dataset's `quarantine` table, one row per record with the resource, the
reason and the record as the vendor sent it, so nothing is lost and the marts never see it.
A numeric field that arrives as a numeric string (a vendor retyping a field) is coerced
back rather than quarantined: the value is intact, only its JSON type changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dlt

QUARANTINE_TABLE = "quarantine"


@dataclass(frozen=True)
class RecordRules:
    primary_key: tuple[str, ...]
    timestamps: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()


def _get(record: dict, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _set(record: dict, path: str, new: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        record = record[part]
    record[last] = new


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 (with Z or an offset) or epoch seconds/milliseconds; None if unparseable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return parse_timestamp(int(text))
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def check(record: Any, rules: RecordRules) -> str | None:
    """Why this record cannot be loaded, or None. Coerces numeric strings in place."""
    if not isinstance(record, dict):
        return f"not a JSON object: {type(record).__name__}"
    for key in rules.primary_key:
        if _get(record, key) in (None, ""):
            return f"missing primary key {key}"
    for path in rules.timestamps:
        value = _get(record, path)
        if value not in (None, "") and parse_timestamp(value) is None:
            return f"unparseable timestamp in {path}: {str(value)[:60]!r}"
    for path in rules.numbers:
        value = _get(record, path)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                return f"non-numeric value in {path}: {value[:60]!r}"
            _set(record, path, int(number) if number.is_integer() and "." not in value else number)
    return None


def quarantine_row(resource: str, record: Any, reason: str) -> Any:
    row = {
        "resource": resource,
        "reason": reason,
        "record": record if isinstance(record, str) else json.dumps(record, default=str, sort_keys=True),
        "quarantined_at": datetime.now(tz=UTC),
    }
    # A table variant: the hints apply to this row only, not to the resource it came through
    # (whose primary key, merge key, column hints and merge disposition would otherwise
    # follow the row).
    hints = dlt.mark.make_hints(
        table_name=QUARANTINE_TABLE, write_disposition="append", primary_key=[], merge_key=[], columns={}
    )
    return dlt.mark.with_hints(row, hints, create_table_variant=True)


def screen(records: Iterable[Any], resource: str, rules: RecordRules) -> Iterator[Any]:
    """Yield good records as they are, and a quarantine row for each bad one."""
    for record in records:
        reason = check(record, rules)
        yield record if reason is None else quarantine_row(resource, record, reason)


def split(page: Iterable[Any], resource: str, rules: RecordRules) -> tuple[list[Any], list[Any]]:
    """A page's good records (to yield as one list) and its quarantine rows."""
    good: list[Any] = []
    bad: list[Any] = []
    for record in page:
        reason = check(record, rules)
        if reason is None:
            good.append(record)
        else:
            bad.append(quarantine_row(resource, record, reason))
    return good, bad
