"""Audience properties as Mailchimp merge fields.

Merge fields belong to the Mailchimp list, not to one Tessera audience: every audience pushed
to the list shares them. So a property's field is found by its name, and its tag is chosen so
that it never takes a field made for another property:
- the tag's stem: upper case, every character other than A-Z, 0-9 and _ becomes _ (`cart value`
  -> `CART_VALUE`), at most 10 characters (Mailchimp's limit for a merge tag):
  `free_shipping_gap` -> `FREE_SHIPP`;
- the candidates are the stem, then the stem ending in a counter (`FREE_SHIP2`, `FREE_SHIP3`,
  ...); the property takes the first candidate that is either its own field (one whose name is
  the property's) or free. A candidate held by a field of another name (another audience's
  `recommended_product_id` holds `RECOMMENDE`, so `recommended_products` gets `RECOMMEND2`) is
  passed over, and so is `EMAIL` (the address itself).
  The tags therefore stay the same from run to run, whichever audience is pushed first.

A missing field is created with the property's name, `text` unless every value seen is a number
(then `number`, so the shop can segment on it), not public, not required. Tessera never changes
or deletes a merge field.

Values are sent as Mailchimp reads them: numbers as numbers for number fields, lists and
objects as compact JSON text, booleans as `true`/`false`, null as "" (Mailchimp's empty value).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from activation.destinations.mailchimp.http import MailchimpApi, raise_for_problem

MAX_TAG_LENGTH = 10
_RESERVED = {"EMAIL"}
_PAGE = 1000


#: Mailchimp keeps at most 50 characters of a merge field's name.
MAX_NAME_LENGTH = 50


def tag_candidates(name: str) -> Iterator[str]:
    """The tags a property may take, in order of preference (see the module's docstring)."""
    stem = re.sub(r"[^A-Z0-9_]", "_", name.upper())[:MAX_TAG_LENGTH] or "PROPERTY"
    n = 1
    while True:
        tag = stem if n == 1 else stem[: MAX_TAG_LENGTH - len(str(n))] + str(n)
        if tag not in _RESERVED:
            yield tag
        n += 1


def field_name(name: str) -> str:
    """The name a property's merge field is created with (and found by)."""
    return name[:MAX_NAME_LENGTH]


def choose_tag(name: str, taken: Mapping[str, str]) -> tuple[str, bool]:
    """(tag, whether the field exists) for property `name`, given the list's fields as tag ->
    field name: the first candidate that is its own field or free."""
    for tag in tag_candidates(name):
        if tag not in taken:
            return tag, False
        if taken[tag] == field_name(name):
            return tag, True
    raise AssertionError("unreachable: the candidates never end")


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
    name: str = ""


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
                    "fields": "merge_fields.tag,merge_fields.type,merge_fields.name,total_items",
                },
            )
            raise_for_problem(body, "read the audience's merge fields")
            data = body.json()
            for field in data.get("merge_fields", []):
                known[field["tag"]] = MergeField(field["tag"], field["type"], field.get("name") or "")
            offset += _PAGE
            if offset >= int(data.get("total_items", 0)):
                return known

    def ensure(self, properties: Sequence[str], samples: Iterable[Mapping[str, Any]]) -> dict[str, MergeField]:
        """Property name -> its merge field, creating the missing ones."""
        if self._known is None:
            self._known = self._read()
        samples = list(samples)
        fields: dict[str, MergeField] = {}
        for name in dict.fromkeys(properties):
            rereads = 0
            while name not in fields:
                tag, exists = choose_tag(name, {t: f.name for t, f in self._known.items()})
                if exists:
                    fields[name] = self._known[tag]
                    continue
                values = [s.get(name) for s in samples if s.get(name) is not None]
                kind = "number" if values and all(_is_number(v) for v in values) else "text"
                body = {"tag": tag, "name": field_name(name), "type": kind, "required": False, "public": False}
                response = self._api.call("POST", f"/lists/{self._list_id}/merge-fields", json=body)
                if response.status_code == 400 and "already exists" in response.text and not rereads:
                    # Created meanwhile (a concurrent run, or a retried POST whose answer was
                    # lost): read the fields again and choose again, once.
                    self._known = self._read()
                    rereads += 1
                    continue
                raise_for_problem(response, f"create the merge field {tag}")
                created = response.json()
                self._known[tag] = MergeField(tag, created.get("type", kind), created.get("name") or field_name(name))
                fields[name] = self._known[tag]
        return fields
