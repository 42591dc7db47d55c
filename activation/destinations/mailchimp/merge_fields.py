"""Audience properties as Mailchimp merge fields.

Mapping (property name -> merge tag), decided from the audience's property list alone so it is
the same on every run:
- upper case, every character other than A-Z, 0-9 and _ becomes _ (`cart value` -> `CART_VALUE`);
- at most 10 characters (Mailchimp's limit for a merge tag): `free_shipping_gap` -> `FREE_SHIPP`;
- unique within the audience, in the order the properties are listed: a tag already taken by an
  earlier property ends in a counter instead (`FREE_SHIP2`, `FREE_SHIP3`, ...);
- never `EMAIL` (the address itself): a property `email` gets `EMAIL2`, like any clash.

A tag the list already has is used as it is (Tessera never changes or deletes a merge field);
a missing one is created with the property's name, `text` unless every value seen is a number
(then `number`, so the shop can segment on it), not public, not required.

Values are sent as Mailchimp reads them: numbers as numbers for number fields, lists and
objects as compact JSON text, booleans as `true`/`false`, null as "" (Mailchimp's empty value).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from activation.destinations.mailchimp.http import MailchimpApi, raise_for_problem

MAX_TAG_LENGTH = 10
_RESERVED = {"EMAIL"}
_PAGE = 1000


def merge_tags(properties: Sequence[str]) -> dict[str, str]:
    """Property name -> merge tag, by the rules in this module's docstring."""
    tags: dict[str, str] = {}
    used: set[str] = set(_RESERVED)
    for name in properties:
        if name in tags:
            continue
        base = re.sub(r"[^A-Z0-9_]", "_", name.upper())[:MAX_TAG_LENGTH] or "PROPERTY"
        tag, n = base, 1
        while tag in used:
            n += 1
            suffix = str(n)
            tag = base[: MAX_TAG_LENGTH - len(suffix)] + suffix
        tags[name] = tag
        used.add(tag)
    return tags


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def field_value(value: Any, field_type: str) -> Any:
    """A warehouse value as a merge field takes it."""
    if value is None:
        return ""
    if field_type == "number" and _is_number(value):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if _is_number(value):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def same_value(current: Any, wanted: Any) -> bool:
    """Whether the member already holds `wanted` (Mailchimp may serve a number field's value as
    a number or as text, and an unset field as "" or not at all)."""
    if current is None:
        current = ""
    if _is_number(current) or _is_number(wanted):
        try:
            return float(current) == float(wanted)
        except (TypeError, ValueError):
            return False
    return str(current) == str(wanted)


@dataclass(frozen=True)
class MergeField:
    tag: str
    type: str


class MergeFields:
    """The audience's merge fields, read once and created on demand."""

    def __init__(self, api: MailchimpApi, list_id: str) -> None:
        self._api = api
        self._list_id = list_id
        self._known: dict[str, MergeField] | None = None

    def _read(self) -> dict[str, MergeField]:
        known: dict[str, MergeField] = {}
        offset = 0
        while True:
            body = self._api.call(
                "GET",
                f"/lists/{self._list_id}/merge-fields",
                params={
                    "count": _PAGE,
                    "offset": offset,
                    "fields": "merge_fields.tag,merge_fields.type,total_items",
                },
            )
            raise_for_problem(body, "read the audience's merge fields")
            data = body.json()
            for field in data.get("merge_fields", []):
                known[field["tag"]] = MergeField(field["tag"], field["type"])
            offset += _PAGE
            if offset >= int(data.get("total_items", 0)):
                return known

    def ensure(self, properties: Sequence[str], samples: Iterable[Mapping[str, Any]]) -> dict[str, MergeField]:
        """Property name -> its merge field, creating the missing ones."""
        if self._known is None:
            self._known = self._read()
        tags = merge_tags(properties)
        samples = list(samples)
        missing = [(name, tag) for name, tag in tags.items() if tag not in self._known]
        for name, tag in missing:
            values = [s.get(name) for s in samples if s.get(name) is not None]
            kind = "number" if values and all(_is_number(v) for v in values) else "text"
            body = {"tag": tag, "name": name[:50], "type": kind, "required": False, "public": False}
            response = self._api.call("POST", f"/lists/{self._list_id}/merge-fields", json=body)
            if response.status_code == 400 and "already exists" in response.text:
                # Created meanwhile (a concurrent run, or a retried POST whose answer was lost).
                self._known = self._read()
                continue
            raise_for_problem(response, f"create the merge field {tag}")
            self._known[tag] = MergeField(tag, response.json().get("type", kind))
        return {name: self._known[tag] for name, tag in tags.items()}
