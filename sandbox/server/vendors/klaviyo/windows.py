"""Keyset pages that read only the rows near their cursor.

A page is the first rows after its cursor in (sort, id) order that pass the request's filter.
Computed over a collection's whole relation, every page costs the whole relation: at a million
customers, half a second to a second a page, for thousands of pages a night. A collection
whose rows can be held in sorted parts instead (`Windowed`) pages like this:

- each part is a run of rows in ascending (key, id) order, where key is the row's value of the
  sort expression as the page's query computes it; bisection finds where the cursor, and any
  bound the filter puts on the sort key, fall in each part;
- the page's query, the collection's own SQL, runs over a window: the rows of every part from
  the cursor up to a bound row, plus the condition that rows come before that bound. Every row
  the whole relation has before the bound is in the window, so when the window yields a full
  page it is the page the whole relation would give; when it yields less, a wider window is
  tried, up to every row.

So a window decides only which rows the query looks at, never what it answers.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

#: A page's first window holds this many times the rows the page needs; each next one eight
#: times more (a filter that keeps few rows reaches every row in a handful of queries).
_FIRST_WIDTH = 2
_GROWTH = 8
#: A window of more rows than this copies about as much as its collection's `whole` relation
#: reads in place (taking 100k profiles into a window: about 50 ms; querying all 700k in
#: place: 75-200 ms), so such a page reads the whole relation instead.
WHOLE_AFTER = 50_000

Item = tuple[Any, Any]  # (sort key, id)
Slice = tuple[int, int]  # [start, stop) positions in a part


@dataclass(frozen=True)
class Part:
    """Rows in ascending (key, id) order. `convert` turns a stored key into the sort
    expression's value (events keep one datetime key for both `datetime` and `timestamp`);
    rows from `stop` on can never be in the relation (events after the clock)."""

    keys: pa.Array
    ids: pa.Array
    convert: Callable[[Any], Any] | None = None
    stop: int | None = None

    def __len__(self) -> int:
        return len(self.keys) if self.stop is None else self.stop

    def key(self, i: int) -> Any:
        value = self.keys[i].as_py()
        return self.convert(value) if self.convert else value

    def item(self, i: int) -> Item:
        return self.key(i), self.ids[i].as_py()

    def first_item_above(self, item: Item, lo: int, hi: int) -> int:
        return bisect.bisect_right(range(hi), item, lo, hi, key=self.item)

    def first_item_from(self, item: Item, lo: int, hi: int) -> int:
        return bisect.bisect_left(range(hi), item, lo, hi, key=self.item)

    def first_key_above(self, value: Any) -> int:
        return bisect.bisect_right(range(len(self)), value, key=self.key)

    def first_key_from(self, value: Any) -> int:
        return bisect.bisect_left(range(len(self)), value, key=self.key)


def part(keys: pa.Array | pa.ChunkedArray, ids: pa.Array | pa.ChunkedArray, **kwargs: Any) -> Part | None:
    """A part over these sorted columns, or None if a key is null: nulls sort last in SQL but
    compare with nothing here, so such a collection is read whole."""
    if keys.null_count:
        return None
    return Part(_array(keys), _array(ids), **kwargs)


def find(values: pa.Array, value: Any) -> int | None:
    """The position of `value` in sorted, non-null `values`, or None."""
    i = bisect.bisect_left(range(len(values)), value, key=lambda j: values[j].as_py())
    return i if i < len(values) and values[i].as_py() == value else None


def _array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array (indexing a chunked one searches its chunks on every lookup),
    without a copy when there is one chunk (combining copies even one)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


@dataclass(frozen=True)
class Windowed:
    """A collection's rows in sorted parts, and `relation(slices)`: the collection's relation
    over the rows in these slices of its parts (a SQL relation with an `id` column, and its
    parameters), computed exactly as over all of them. `whole()`, where a window copies its
    rows, is the relation over every row in place, for windows wider than `WHOLE_AFTER`."""

    parts: list[Part]
    relation: Callable[[list[Slice]], tuple[str, dict[str, Any]]]
    whole: Callable[[], tuple[str, dict[str, Any]]] | None = None


#: `run(relation, params, bound)`: the page's query over a relation, keeping only rows before
#: (or, walking backwards, after) the bound item when one is given.
Run = Callable[[str, dict[str, Any], Item | None], list[dict[str, Any]]]


def page_rows(
    windowed: Windowed,
    run: Run,
    cursor: Item | None,
    forward: bool,
    bounds: list[tuple[str, Any]],
    size: int,
) -> list[dict[str, Any]] | None:
    """The page's rows (up to size + 1, as `run` returns them), or None when the cursor or the
    filter's bounds do not compare with the parts' keys (a cursor made for another ordering):
    the caller then asks the whole relation, which answers such a cursor as it always did."""
    try:
        ranges = [_candidates(p, cursor, forward, bounds) for p in windowed.parts]
    except TypeError:
        return None
    width = _FIRST_WIDTH * (size + 1)
    while True:
        if windowed.whole is not None and sum(min(width, hi - lo) for lo, hi in ranges) > WHOLE_AFTER:
            relation, params = windowed.whole()
            return run(relation, params, None)
        bound, slices = _window(windowed.parts, ranges, forward, width)
        relation, params = windowed.relation(slices)
        rows = run(relation, params, bound)
        if len(rows) > size or bound is None:
            return rows
        width *= _GROWTH


def _candidates(p: Part, cursor: Item | None, forward: bool, bounds: list[tuple[str, Any]]) -> Slice:
    """Positions of the part's rows that can pass the cursor and the filter's bounds on the
    sort key; every row outside fails the page's WHERE."""
    lo, hi = 0, len(p)
    for op, value in bounds:
        if op == "greater-than":
            lo = max(lo, p.first_key_above(value))
        elif op == "greater-or-equal":
            lo = max(lo, p.first_key_from(value))
        elif op == "less-than":
            hi = min(hi, p.first_key_from(value))
        elif op == "less-or-equal":
            hi = min(hi, p.first_key_above(value))
    hi = max(lo, hi)
    if cursor is not None:
        if forward:
            lo = p.first_item_above(cursor, lo, hi)
        else:
            hi = p.first_item_from(cursor, lo, hi)
    return lo, hi


def _window(parts: list[Part], ranges: list[Slice], forward: bool, width: int) -> tuple[Item | None, list[Slice]]:
    """The bound item and each part's slice for a window of `width` rows per part from the
    cursor: the bound is the nearest row just past any part's first `width` candidates, and
    each part contributes its candidates before it. No bound: every candidate."""
    if forward:
        edges = [p.item(lo + width) for p, (lo, hi) in zip(parts, ranges, strict=True) if lo + width < hi]
        if not edges:
            return None, ranges
        bound = min(edges)
        return bound, [(lo, p.first_item_from(bound, lo, hi)) for p, (lo, hi) in zip(parts, ranges, strict=True)]
    edges = [p.item(hi - width - 1) for p, (lo, hi) in zip(parts, ranges, strict=True) if hi - width - 1 >= lo]
    if not edges:
        return None, ranges
    bound = max(edges)
    return bound, [(p.first_item_above(bound, lo, hi), hi) for p, (lo, hi) in zip(parts, ranges, strict=True)]
