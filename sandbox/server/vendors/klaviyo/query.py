"""Klaviyo's collection semantics over DuckDB: the JSON:API `filter` language, `sort`,
`page[size]`, opaque keyset `page[cursor]`s, sparse fieldsets and record faults.

Filter syntax (https://developers.klaviyo.com/en/docs/filtering_): `op(field,value)` calls,
`and(...)`, `or(...)`, `not(...)`, and top-level calls separated by commas (an implicit and).
Strings are quoted ("x" or 'x'); datetimes must be unquoted (Klaviyo rejects quoted ones);
lists are `["a","b"]`. Each endpoint declares which fields and operators it allows.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.responses import Response

from sandbox.server.faults import ADDED_FIELD
from sandbox.server.vendors.klaviyo import windows
from sandbox.server.vendors.klaviyo.api import VENDOR, Ctx, invalid, jsonapi, parse_datetime
from sandbox.server.vendors.klaviyo.windows import Windowed

# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------

_COMPARE = {"greater-than": ">", "greater-or-equal": ">=", "less-than": "<", "less-or-equal": "<="}


@dataclass(frozen=True)
class FilterField:
    """A filterable field: its SQL expression, value kind and allowed operators."""

    sql: str
    kind: str  # "string", "datetime", "number", "boolean" or "relationship"
    ops: frozenset[str]
    case_insensitive: bool = False


def ff(sql: str, kind: str, *ops: str, ci: bool = False) -> FilterField:
    return FilterField(sql, kind, frozenset(ops), ci)


@dataclass
class _Raw:
    """An unquoted token: a field name, number, boolean or datetime, depending on position."""

    text: str


@dataclass
class _Call:
    op: str
    args: list[Any]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, why: str) -> Exception:
        return invalid(f"Invalid filter provided: {why} (at position {self.pos}).", parameter="filter")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.fail(f"expected {char!r}")
        self.pos += 1

    def parse(self) -> list[_Call]:
        calls = [self.call()]
        while self.peek() == ",":
            self.pos += 1
            calls.append(self.call())
        if self.pos != len(self.text):
            raise self.fail("unexpected trailing text")
        return calls

    def call(self) -> _Call:
        start = self.pos
        while self.peek().isalpha() or self.peek() == "-":
            self.pos += 1
        op = self.text[start : self.pos]
        if not op:
            raise self.fail("expected an operator such as equals(...)")
        self.expect("(")
        args = [self.arg()]
        while self.peek() == ",":
            self.pos += 1
            args.append(self.arg())
        self.expect(")")
        return _Call(op, args)

    def arg(self) -> Any:
        char = self.peek()
        if char in ("'", '"'):
            return self.string(char)
        if char == "[":
            self.pos += 1
            items: list[Any] = []
            while self.peek() != "]":
                items.append(self.arg())
                if self.peek() == ",":
                    self.pos += 1
                elif self.peek() != "]":
                    raise self.fail("expected ',' or ']'")
            self.pos += 1
            return items
        start = self.pos
        while self.peek() and self.peek() not in ",()[]":
            self.pos += 1
        if self.peek() == "(":  # a nested call: and(...), or(...), not(...)
            self.pos = start
            return self.call()
        token = self.text[start : self.pos]
        if not token:
            raise self.fail("expected a value")
        return _Raw(token)

    def string(self, quote: str) -> str:
        self.pos += 1
        out = []
        while self.peek() != quote:
            if not self.peek():
                raise self.fail("unterminated string")
            if self.peek() == "\\":
                self.pos += 1
            out.append(self.peek())
            self.pos += 1
        self.pos += 1
        return "".join(out)


class _Compiler:
    """Turns parsed calls into a SQL condition with named parameters ($f0, $f1, ...)."""

    def __init__(self, fields: dict[str, FilterField]) -> None:
        self.fields = fields
        self.params: dict[str, Any] = {}

    def param(self, value: Any) -> str:
        name = f"f{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def compile(self, call: _Call) -> str:
        if call.op in ("and", "or"):
            parts = [self.compile(self.as_call(a)) for a in call.args]
            return "(" + f" {call.op.upper()} ".join(parts) + ")"
        if call.op == "not":
            if len(call.args) != 1:
                raise invalid("not() takes exactly one expression.", parameter="filter")
            return f"(NOT {self.compile(self.as_call(call.args[0]))})"
        if not call.args or not isinstance(call.args[0], _Raw):
            raise invalid(f"{call.op}() must start with a field name.", parameter="filter")
        name = call.args[0].text
        spec = self.fields.get(name)
        if spec is None:
            raise invalid(f"'{name}' is not a valid field for this filter.", parameter="filter")
        if call.op not in spec.ops:
            allowed = ", ".join(sorted(spec.ops))
            raise invalid(
                f"Filter operation '{call.op}' is not allowed for field '{name}' (allowed: {allowed}).",
                parameter="filter",
            )
        values = call.args[1:]
        if call.op == "has":
            if values:
                raise invalid(f"has() takes only a field: has({name}).", parameter="filter")
            return f"({spec.sql} IS NOT NULL)"
        if len(values) != 1:
            raise invalid(f"{call.op}() takes a field and one value.", parameter="filter")
        value = values[0]
        if call.op == "any":
            if not isinstance(value, list) or not value:
                raise invalid(f"any() needs a non-empty list: any({name},[...]).", parameter="filter")
            items = [self.param(self.value(spec, name, v, ci=spec.case_insensitive)) for v in value]
            return f"({self.column(spec)} IN ({', '.join(items)}))"
        converted = self.value(spec, name, value, ci=spec.case_insensitive and call.op == "equals")
        if call.op == "equals":
            return f"({self.column(spec)} = {self.param(converted)})"
        if call.op == "contains":
            return f"contains({spec.sql}, {self.param(converted)})"
        return f"({spec.sql} {_COMPARE[call.op]} {self.param(converted)})"

    @staticmethod
    def as_call(arg: Any) -> _Call:
        if not isinstance(arg, _Call):
            raise invalid("and(), or() and not() take filter expressions.", parameter="filter")
        return arg

    @staticmethod
    def column(spec: FilterField) -> str:
        return f"lower({spec.sql})" if spec.case_insensitive else spec.sql

    @staticmethod
    def value(spec: FilterField, name: str, value: Any, *, ci: bool) -> Any:
        kind = spec.kind
        if kind == "string":
            if not isinstance(value, str):
                raise invalid(f"The value for '{name}' must be a quoted string.", parameter="filter")
            return value.lower() if ci else value
        if not isinstance(value, _Raw):
            raise invalid(
                f"The value for '{name}' must not be quoted (Klaviyo datetimes, numbers and booleans "
                "are written bare, e.g. greater-than(updated,2024-01-01T00:00:00Z)).",
                parameter="filter",
            )
        try:
            if kind == "datetime":
                return parse_datetime(value.text)
            if kind == "number":
                return float(value.text)
        except ValueError:
            raise invalid(f"'{value.text}' is not a valid {kind} for '{name}'.", parameter="filter") from None
        if kind == "boolean" and value.text in ("true", "false"):
            return value.text == "true"
        raise invalid(f"'{value.text}' is not a valid {kind} for '{name}'.", parameter="filter")


def compile_filter(text: str | None, fields: dict[str, FilterField]) -> tuple[str, dict[str, Any]]:
    """SQL condition and parameters for a `filter` value ("TRUE" when there is none)."""
    if not text:
        return "TRUE", {}
    compiler = _Compiler(fields)
    parts = [compiler.compile(call) for call in _Parser(text.strip()).parse()]
    return " AND ".join(parts), compiler.params


def sort_bounds(text: str | None, fields: dict[str, FilterField], sort_sql: str) -> list[tuple[str, Any]]:
    """The comparisons every row must pass on the sort expression itself: `(op, value)` for
    each greater-/less-than call on a field whose SQL is the sort's, at the top level or in a
    top-level and(...). A page bisects to them instead of reading the rows before (an
    incremental read's `greater-than(datetime,...)` skips the history). Call after
    `compile_filter`, which has checked the filter."""
    if not text:
        return []
    bounds: list[tuple[str, Any]] = []
    stack: list[Any] = list(_Parser(text.strip()).parse())
    while stack:
        call = stack.pop()
        if call.op == "and":
            stack.extend(a for a in call.args if isinstance(a, _Call))
            continue
        spec = fields.get(call.args[0].text) if call.args and isinstance(call.args[0], _Raw) else None
        if call.op in _COMPARE and spec is not None and spec.sql == sort_sql and len(call.args) == 2:
            bounds.append((call.op, _Compiler.value(spec, call.args[0].text, call.args[1], ci=False)))
    return bounds


def filter_mentions(text: str | None, op: str, name: str) -> str | None:
    """The value of the first `op(name, value)` anywhere in a filter (Get Campaigns requires
    `equals(messages.channel,...)`), or None."""
    if not text:
        return None
    stack: list[Any] = list(_Parser(text.strip()).parse())
    while stack:
        call = stack.pop(0)
        if not isinstance(call, _Call):
            continue
        args = call.args
        if call.op == op and len(args) == 2 and isinstance(args[0], _Raw) and args[0].text == name:
            return args[1] if isinstance(args[1], str) else None
        stack.extend(args)
    return None


# --------------------------------------------------------------------------------------------
# Cursors
# --------------------------------------------------------------------------------------------


def _encode_cursor(direction: str, sort: str, key: tuple[Any, str]) -> str:
    value = key[0].isoformat() if isinstance(key[0], datetime) else key[0]
    kind = "ts" if isinstance(key[0], datetime) else "v"
    raw = json.dumps([direction, sort, kind, value, key[1]], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[str, tuple[Any, str]]:
    bad = invalid("Invalid page cursor.", parameter="page[cursor]")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        direction, cursor_sort, kind, value, last_id = json.loads(raw)
        key = (parse_datetime(value) if kind == "ts" else value, last_id)
    except (ValueError, binascii.Error, TypeError, AttributeError):
        raise bad from None
    if direction not in ("next", "prev") or cursor_sort != sort:
        raise bad  # a cursor only continues the ordering it was issued for
    return direction, key


# --------------------------------------------------------------------------------------------
# Collections
# --------------------------------------------------------------------------------------------

Row = dict[str, Any]


@dataclass(frozen=True)
class Collection:
    """One listable resource: where its rows come from and how they are rendered.

    `source(ctx)` returns a SQL relation (a subquery, with an `id` column) and its named
    parameters; it may register overlay tables on `ctx.db()`. `render(ctx, rows)`
    turns rows into JSON:API resource objects."""

    name: str  # resource name used for record faults, e.g. "profiles"
    source: Callable[[Ctx], tuple[str, dict[str, Any]]]
    render: Callable[[Ctx, list[Row]], list[dict[str, Any]]]
    filters: dict[str, FilterField] = field(default_factory=dict)
    sorts: dict[str, str] = field(default_factory=lambda: {"id": "id"})  # sort name -> SQL
    default_sort: str = "id"
    default_size: int = 20
    max_size: int = 100
    page_size_param: bool = True  # False where Klaviyo has no page[size] (fixed page size)
    timestamp_field: str | None = None  # dotted path in a resource, for malformed faults
    numeric_field: str | None = None  # dotted path, for the retyped_field drift
    # `windows(ctx, sort_sql)`: the rows in sorted parts, so a page reads only the rows near
    # its cursor (see windows.py); None (or None returned) computes the whole relation.
    windows: Callable[[Ctx, str], Windowed | None] | None = None


@dataclass
class Page:
    rows: list[Row]
    next_cursor: str | None
    prev_cursor: str | None


def _page_size(ctx: Ctx, coll: Collection) -> int:
    raw = ctx.query.get("page[size]")
    if raw is None or not coll.page_size_param:
        return coll.default_size
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= coll.max_size:
        raise invalid(f"page[size] must be an integer between 1 and {coll.max_size}.", parameter="page[size]")
    return size


def _sort(ctx: Ctx, coll: Collection) -> tuple[str, str, bool]:
    """(sort name as given, SQL expression, descending)."""
    if not ctx.query.get("sort") and coll.default_sort not in coll.sorts:
        # An order Klaviyo keeps without offering it as a `sort` (by id, where only the join
        # time may be asked for).
        return coll.default_sort, coll.default_sort, False
    given = ctx.query.get("sort") or coll.default_sort
    name = given.removeprefix("-")
    if name not in coll.sorts:
        allowed = ", ".join(sorted(coll.sorts))
        raise invalid(f"'{given}' is not a valid sort field (allowed: {allowed}).", parameter="sort")
    return given, coll.sorts[name], given.startswith("-")


def fetch_page(ctx: Ctx, coll: Collection) -> Page:
    """One keyset page of `coll` under the request's filter, sort, size and cursor.

    Ordering is (sort expression, id), so pages neither skip nor repeat rows while the data
    changes between requests; a `prev` cursor walks backwards from the page's first row."""
    filter_text = ctx.query.get("filter")
    condition, filter_params = compile_filter(filter_text, coll.filters)
    sort_name, sort_sql, desc = _sort(ctx, coll)
    size = _page_size(ctx, coll)
    cursor = ctx.query.get("page[cursor]")
    direction, key = _decode_cursor(cursor, sort_name) if cursor else ("next", None)

    # Walking backwards flips the comparison and the order; rows are reversed afterwards.
    forward = (direction == "next") != desc
    keyset = "TRUE"
    page_params = dict(filter_params)
    if key is not None:
        op = ">" if forward else "<"
        keyset = f"(({sort_sql}, id) {op} ($k_sort, $k_id))"
        page_params.update(k_sort=key[0], k_id=key[1])
    order = "ASC" if forward else "DESC"

    def run(relation: str, params: dict[str, Any], bound: tuple[Any, Any] | None) -> list[Row]:
        """The page's query over `relation`; a window's bound keeps only the rows before it."""
        before = "TRUE"
        all_params = {**params, **page_params}
        if bound is not None:
            # Spelled out: next to the keyset's row comparison, DuckDB would fold a second one
            # into a BETWEEN, which it cannot evaluate on rows.
            than = "<" if forward else ">"
            before = f"({sort_sql} {than} $b_sort OR ({sort_sql} = $b_sort AND id {than} $b_id))"
            all_params.update(b_sort=bound[0], b_id=bound[1])
        sql = (
            f"SELECT *, {sort_sql} AS _sort FROM ({relation}) AS r"
            f" WHERE ({condition}) AND {keyset} AND {before}"
            f" ORDER BY {sort_sql} {order}, id {order} LIMIT {size + 1}"
        )
        return query_rows(ctx, sql, all_params)

    windowed = coll.windows(ctx, sort_sql) if coll.windows else None
    rows: list[Row] | None = None
    if windowed is not None:
        bounds = sort_bounds(filter_text, coll.filters, sort_sql)
        rows = windows.page_rows(windowed, run, key, forward, bounds, size)
    if rows is None:
        relation, params = coll.source(ctx)
        rows = run(relation, params, None)
    more = len(rows) > size
    rows = rows[:size]
    if direction == "prev":
        rows.reverse()
    if not rows:
        return Page([], None, None)

    def key_of(row: Row) -> tuple[Any, str]:
        return row["_sort"], row["id"]

    has_next = more if direction == "next" else True
    has_prev = more if direction == "prev" else key is not None
    return Page(
        rows,
        _encode_cursor("next", sort_name, key_of(rows[-1])) if has_next else None,
        _encode_cursor("prev", sort_name, key_of(rows[0])) if has_prev else None,
    )


def sparse(ctx: Ctx, resource_type: str, attributes: dict[str, Any]) -> dict[str, Any]:
    """Apply `fields[<type>]=a,b,c.d` (sparse fieldsets) to one resource's attributes."""
    wanted = ctx.query.get(f"fields[{resource_type}]")
    if not wanted:
        return attributes
    out: dict[str, Any] = {}
    for name in (n.strip() for n in wanted.split(",") if n.strip()):
        head, _, rest = name.partition(".")
        if head not in attributes:
            continue
        if rest and isinstance(attributes[head], dict):
            out.setdefault(head, {})
            if rest in attributes[head]:
                out[head][rest] = attributes[head][rest]
        else:
            out[head] = attributes[head]
    return out


def requested(ctx: Ctx, resource_type: str, name: str) -> bool:
    """Whether the sparse fieldset (`fields[<type>]`) keeps attribute `name`; without one,
    every attribute is kept. An attribute dropped anyway need not be computed."""
    wanted = ctx.query.get(f"fields[{resource_type}]")
    return not wanted or any(n.strip().partition(".")[0] == name for n in wanted.split(","))


def with_faults(ctx: Ctx, coll: Collection, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The core's record faults for one page. A drifted field is moved into `attributes`,
    where a new field appears when Klaviyo ships one."""
    out = ctx.state.faults.apply_record_faults(
        VENDOR,
        coll.name,
        resources,
        page_key=ctx.request.url.query or "first",
        timestamp_field=coll.timestamp_field,
        numeric_field=coll.numeric_field,
    )
    moved = []
    for resource in out:
        if ADDED_FIELD in resource and isinstance(resource.get("attributes"), dict):
            resource = dict(resource)
            extra = resource.pop(ADDED_FIELD)
            resource["attributes"] = {**resource["attributes"], ADDED_FIELD: extra}
        moved.append(resource)
    return moved


def list_response(
    ctx: Ctx,
    coll: Collection,
    included: Callable[[Ctx, list[Row]], list[dict[str, Any]]] | None = None,
) -> Response:
    """A collection document: `data`, `links` {self, next, prev} (absolute), `included`."""
    page = fetch_page(ctx, coll)
    body: dict[str, Any] = {
        "data": with_faults(ctx, coll, coll.render(ctx, page.rows)),
        "links": {
            "self": str(ctx.request.url),
            "next": ctx.page_link(page.next_cursor) if page.next_cursor else None,
            "prev": ctx.page_link(page.prev_cursor) if page.prev_cursor else None,
        },
    }
    if included is not None:
        body["included"] = included(ctx, page.rows)
    return jsonapi(body)


def query_rows(ctx: Ctx, sql: str, params: dict[str, Any]) -> list[Row]:
    """Rows of a query on the request's cursor, as dicts."""
    cur = ctx.db().execute(sql, params)
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, values, strict=True)) for values in cur.fetchall()]


def fetch_one(ctx: Ctx, coll: Collection, resource_id: str) -> Row | None:
    relation, params = coll.source(ctx)
    rows = query_rows(ctx, f"SELECT * FROM ({relation}) AS r WHERE id = $one_id", {**params, "one_id": resource_id})
    return rows[0] if rows else None


def parse_includes(ctx: Ctx, allowed: set[str]) -> set[str]:
    raw = ctx.query.get("include")
    names = {n.strip() for n in raw.split(",") if n.strip()} if raw else set()
    unknown = names - allowed
    if unknown:
        raise invalid(
            f"Invalid include: {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))}).",
            parameter="include",
        )
    return names
