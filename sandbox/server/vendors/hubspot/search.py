"""`POST /crm/v3/objects/{type}/search`: the request body turned into SQL over an object
type's visible view.

HubSpot's documented search limits are enforced: at most 5 filter groups (ORed) of at most
6 filters (ANDed), 18 filters in all, one sort, pages of at most 200, and no paging past the
10,000th result. Date-time filter values may be epoch milliseconds or ISO-8601 strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.server.state import parse_ts
from sandbox.server.vendors.hubspot.objects import ObjectType, Prop

MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
DEFAULT_LIMIT = 10
MAX_LIMIT = 200
#: Search results are capped at 10,000 per query: an `after` at or past it is a 400, which is
#: why incremental loaders re-query with a moved lower bound instead of paging on.
MAX_RESULTS = 10_000

_COMPARISONS = {"EQ": "=", "LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SearchError(ValueError):
    """The request is invalid; the message is what the 400 says."""


class PastResultWindow(SearchError):
    """`after` points past the 10,000-result window."""


@dataclass(frozen=True)
class SearchRequest:
    where: str  # SQL condition over the visible view ("TRUE" when unfiltered)
    params: dict[str, Any]  # its named parameters (the caller adds `clock`)
    order: str  # ORDER BY clause body
    properties: list[str]  # requested property names (empty: the defaults)
    limit: int
    after: int  # offset into the result list


def parse_search(obj: ObjectType, body: Any) -> SearchRequest:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise SearchError("Invalid input JSON: the request body must be a JSON object")
    params: dict[str, Any] = {}
    conditions = [
        c
        for c in (
            _groups_sql(obj, body.get("filterGroups"), params),
            _query_sql(obj, body.get("query"), params),
        )
        if c
    ]
    return SearchRequest(
        where=" AND ".join(conditions) or "TRUE",
        params=params,
        order=_order_sql(obj, body.get("sorts")),
        properties=_string_list(body.get("properties"), "properties"),
        limit=_limit(body.get("limit")),
        after=_after(body.get("after")),
    )


def _groups_sql(obj: ObjectType, groups: Any, params: dict[str, Any]) -> str:
    if not groups:
        return ""
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise SearchError("filterGroups must be a list of objects with `filters`")
    if len(groups) > MAX_GROUPS:
        raise SearchError(f"Too many filter groups: {len(groups)} (at most {MAX_GROUPS})")
    total = 0
    ored: list[str] = []
    for group in groups:
        filters = group.get("filters") or []
        if not isinstance(filters, list) or not all(isinstance(f, dict) for f in filters):
            raise SearchError("filters must be a list of objects")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchError(f"Too many filters in one group: {len(filters)} (at most {MAX_FILTERS_PER_GROUP})")
        total += len(filters)
        anded = [_filter_sql(obj, f, params) for f in filters]
        ored.append("(" + (" AND ".join(anded) or "TRUE") + ")")
    if total > MAX_FILTERS:
        raise SearchError(f"Too many filters: {total} (at most {MAX_FILTERS})")
    return "(" + " OR ".join(ored) + ")"


def _filter_sql(obj: ObjectType, flt: dict[str, Any], params: dict[str, Any]) -> str:
    name, operator = flt.get("propertyName"), flt.get("operator")
    prop = obj.properties.get(name) if isinstance(name, str) else None
    if prop is None:
        raise SearchError(f'Property "{name}" does not exist')
    # String comparisons are case-insensitive in HubSpot search.
    col = f'lower("{name}")' if prop.kind == "string" else f'"{name}"'

    def bind(raw: Any) -> str:
        key = f"p{len(params)}"
        params[key] = _coerce(prop, name, raw)
        return f"${key}"

    if operator in _COMPARISONS:
        return f"{col} {_COMPARISONS[operator]} {bind(flt.get('value'))}"
    if operator == "NEQ":
        return f"{col} IS DISTINCT FROM {bind(flt.get('value'))}"
    if operator == "BETWEEN":
        return f"{col} BETWEEN {bind(flt.get('value'))} AND {bind(flt.get('highValue'))}"
    if operator in ("IN", "NOT_IN"):
        values = flt.get("values")
        if not isinstance(values, list) or not values:
            raise SearchError(f"{operator} needs a non-empty `values` list")
        listed = ", ".join(bind(v) for v in values)
        return f"{col} IN ({listed})" if operator == "IN" else f"({col} IS NULL OR {col} NOT IN ({listed}))"
    if operator == "HAS_PROPERTY":
        return f"{col} IS NOT NULL"
    if operator == "NOT_HAS_PROPERTY":
        return f"{col} IS NULL"
    raise SearchError(f"Unsupported filter operator: {operator!r}")


def _coerce(prop: Prop, name: str, raw: Any) -> Any:
    """A filter value (HubSpot sends strings) as the type of the property's column."""
    if raw is None or isinstance(raw, dict | list):
        raise SearchError(f'Filter on "{name}" needs a value')
    text = str(raw).strip()
    try:
        if prop.kind == "datetime":
            if re.fullmatch(r"-?\d+", text):
                return int(text)  # epoch milliseconds
            return (parse_ts(text) - _EPOCH) // timedelta(milliseconds=1)
        if prop.kind == "number":
            return float(text)
        if prop.kind == "id":
            return int(text)
    except ValueError:
        raise SearchError(f'{text!r} is not a valid value for property "{name}"') from None
    if prop.kind == "bool":
        if text.lower() not in ("true", "false"):
            raise SearchError(f'{text!r} is not a valid value for property "{name}"')
        return text.lower() == "true"
    return text.lower()


def _query_sql(obj: ObjectType, query: Any, params: dict[str, Any]) -> str:
    """`query`: every word must occur in one of the type's default searchable properties."""
    if query is None or query == "":
        return ""
    if not isinstance(query, str):
        raise SearchError("query must be a string")
    terms: list[str] = []
    for word in query.lower().split():
        key = f"p{len(params)}"
        params[key] = word
        terms.append("(" + " OR ".join(f'contains(lower("{c}"), ${key})' for c in obj.searchable) + ")")
    return " AND ".join(terms)


def _order_sql(obj: ObjectType, sorts: Any) -> str:
    """One sort rule, as `{"propertyName", "direction"}` or a bare property name (the SDK
    types sorts as strings); ties and unsorted searches go by object id."""
    if not sorts:
        return "id ASC"
    if not isinstance(sorts, list):
        raise SearchError("sorts must be a list")
    if len(sorts) > 1:
        raise SearchError("Only one sort is supported")
    rule = sorts[0]
    if isinstance(rule, str):
        name, direction = rule, "ASCENDING"
    elif isinstance(rule, dict):
        name, direction = rule.get("propertyName"), rule.get("direction") or "ASCENDING"
    else:
        raise SearchError("a sort must be a property name or {propertyName, direction}")
    if name not in obj.properties:
        raise SearchError(f'Cannot sort on unknown property "{name}"')
    if direction not in ("ASCENDING", "DESCENDING"):
        raise SearchError(f"Sort direction must be ASCENDING or DESCENDING, got {direction!r}")
    return f'"{name}" {"ASC" if direction == "ASCENDING" else "DESC"} NULLS LAST, id ASC'


def _string_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SearchError(f"{field} must be a list of strings")
    return value


def _limit(value: Any) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise SearchError(f"limit must be an integer, got {value!r}")
    limit = int(value)
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def _after(value: Any) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise SearchError(f"after must be a paging cursor from a previous response, got {value!r}")
    after = int(value)
    if after >= MAX_RESULTS:
        raise PastResultWindow()
    return after
