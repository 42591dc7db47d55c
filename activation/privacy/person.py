"""Who an erasure or access request is about: the resolved person and every identifier they have.

A request names an email (and perhaps more identifiers). The person behind it is found two ways,
so a request is honoured even before the first dbt build:

1. the identity map `marts.customer_identifiers`: every identifier of the customers that carry
   one of the request's identifiers (blocked identifiers, like a placeholder address, are never
   part of a real person's customer, so they are not swept in);
2. the raw person records (Shopify customers, HubSpot contacts, Klaviyo profiles, Mailchimp
   members) that carry one of them, whose ids, emails and phones join the set, the tokens of
   their checkouts (their orders and Shopify's abandoned checkouts), and the analytics devices
   on which only this person ever logged in (a shared family laptop is not theirs alone and
   stays; the events of their checkouts on it go).

Values are compared normalized (`ingestion.common.erasure.normalize_identifier`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import duckdb

from ingestion.common.erasure import (
    CHECKOUT_TOKEN,
    PERSON_RESOURCES,
    identifier_hash,
    is_person_column,
    normalize_identifier,
)

# Placeholders that many people type; never treated as one person's identifier.
JUNK_VALUES = frozenset({"", "n/a", "na", "none", "null", "unknown", "test@test.com", "0000000000", "+10000000000"})


@dataclass
class Person:
    """Everything that identifies one person in the warehouse."""

    customer_ids: set[str] = field(default_factory=set)
    # (source, id_type, value as stored) from the identity map and the request itself.
    identifiers: set[tuple[str, str, str]] = field(default_factory=set)
    # Normalized values of every identifier, whatever its source: what person columns are
    # matched on. Checkout tokens are not among them.
    values: set[str] = field(default_factory=set)
    # Normalized tokens of their checkouts, matched only where a checkout is named (a checkout
    # column, a `shopify_checkout:` identity node): a token is no email, phone or person id.
    checkout_tokens: set[str] = field(default_factory=set)

    @property
    def emails(self) -> set[str]:
        return {v for v in self.values if "@" in v}

    def add(self, source: str, id_type: str, value: object) -> None:
        normalized = normalize_identifier(value)
        if normalized in JUNK_VALUES or len(normalized) < 3:
            return
        self.identifiers.add((source, id_type, str(value).strip()))
        (self.checkout_tokens if (source, id_type) == CHECKOUT_TOKEN else self.values).add(normalized)

    @classmethod
    def union(cls, people: Iterable[Person]) -> Person:
        """One Person holding everything of `people`: for matching that needs no attribution."""
        merged = cls()
        for person in people:
            merged.customer_ids |= person.customer_ids
            merged.identifiers |= person.identifiers
            merged.values |= person.values
            merged.checkout_tokens |= person.checkout_tokens
        return merged

    def hashes(self) -> set[tuple[str, str, str]]:
        """(source, id_type, sha256) for the tombstone."""
        return {(s, t, identifier_hash(v)) for s, t, v in self.identifiers}


IDENTIFIER_PARTS = ("source", "id_type", "value")


def parse_identifier(text: str, position: int | None = None) -> tuple[str, str, str]:
    """`source:id_type:value` (the value may contain colons) as a tuple.

    A malformed one is refused saying which part is wrong, never quoting it: the reason is
    logged and published as Dagster metadata, and the text is often an address typed alone.
    `position` (from 1) says which of a request's identifiers it is."""
    parts = text.split(":", 2)
    if len(parts) == 3 and all(parts):
        return parts[0], parts[1], parts[2]
    if len(parts) < 3:
        what = f"it holds {'one' if len(parts) == 2 else 'no'} ':' where two separate its three parts"
    else:
        empty = [name for name, part in zip(IDENTIFIER_PARTS, parts, strict=True) if not part]
        what = f"its {' and '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty"
    which = "an identifier" if position is None else f"identifier {position}"
    raise ValueError(f"{which} is not source:id_type:value (e.g. shopify:customer_id:123): {what}")


def parse_identifiers(texts: Iterable[str]) -> list[tuple[str, str, str]]:
    """Each of a request's identifiers parsed, a malformed one refused by its position."""
    return [parse_identifier(text, position) for position, text in enumerate(texts, 1)]


def tables(con: duckdb.DuckDBPyConnection, schema_like: str = "%") -> list[tuple[str, str]]:
    """Base tables (not views) whose schema matches `schema_like`."""
    return con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_schema LIKE ? AND table_catalog = current_database() "
        "ORDER BY 1, 2",
        [schema_like],
    ).fetchall()


def columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    return con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? AND table_catalog = current_database() ORDER BY ordinal_position",
        [schema, table],
    ).fetchall()


def has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether `schema.table` is a table of this warehouse."""
    return (schema, table) in set(tables(con, schema))


def load_pairs(con: duckdb.DuckDBPyConnection, name: str, pairs: Iterable[tuple[int, str]]) -> None:
    """A temp table `name (k INTEGER, v VARCHAR)`: value `v` belongs to the k-th person."""
    ks, vs = [], []
    for k, v in sorted(set(pairs)):
        ks.append(k)
        vs.append(v)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} (k INTEGER, v VARCHAR)")
    if ks:
        # One statement for any number of values: executemany costs a round trip per row.
        con.execute(f"INSERT INTO {name} SELECT unnest(?::INTEGER[]), unnest(?::VARCHAR[])", [ks, vs])


def _load_values(con: duckdb.DuckDBPyConnection, people: Sequence[Person]) -> None:
    load_pairs(con, "_people_values", ((k, v) for k, person in enumerate(people) for v in person.values))


def _blocked_values(con: duckdb.DuckDBPyConnection) -> set[str]:
    if not has_table(con, "intermediate", "int_identity__resolved"):
        return set()
    rows = con.execute(
        "SELECT DISTINCT lower(trim(substr(node, length(kind) + 2))) FROM intermediate.int_identity__resolved "
        "WHERE is_blocked"
    ).fetchall()
    return {v for (v,) in rows}


def _from_identity_map(con: duckdb.DuckDBPyConnection, people: Sequence[Person]) -> None:
    if not has_table(con, "marts", "customer_identifiers"):
        return
    _load_values(con, people)
    found = con.execute(
        "SELECT DISTINCT p.k, c.customer_id FROM marts.customer_identifiers c "
        "JOIN _people_values p ON lower(trim(c.id_value)) = p.v"
    ).fetchall()
    for k, customer_id in found:
        people[k].customer_ids.add(customer_id)
    load_pairs(con, "_people_customers", ((k, c) for k, person in enumerate(people) for c in person.customer_ids))
    rows = con.execute(
        "SELECT p.k, c.source, c.id_type, c.id_value FROM marts.customer_identifiers c "
        "JOIN _people_customers p ON c.customer_id = p.v"
    ).fetchall()
    for k, source, id_type, value in rows:
        people[k].add(source, id_type, value)


def _matching(table: str, person_columns: list[str], select: str, values: str = "_people_values") -> str:
    """Rows of `table` with a person column holding one of the k-th person's values, as (k, select)."""
    return " UNION ".join(
        f'SELECT p.k, {select} FROM {table} t JOIN {values} p ON lower(trim(CAST(t."{c}" AS VARCHAR))) = p.v'
        for c in person_columns
    )


def _from_raw_person_records(con: duckdb.DuckDBPyConnection, people: Sequence[Person], blocked: set[str]) -> None:
    for schema, table in tables(con, "raw%"):
        if table not in PERSON_RESOURCES or not schema.startswith("raw_") or schema.endswith("_staging"):
            continue
        person_columns = [c for c, _ in columns(con, schema, table) if is_person_column(c, table)]
        if not person_columns:
            continue
        # Reloaded per table: what one table adds is matched in the next.
        _load_values(con, people)
        select = ", ".join(f'CAST(t."{c}" AS VARCHAR)' for c in person_columns)
        source = schema.removeprefix("raw_")
        for k, *row in con.execute(_matching(f'"{schema}"."{table}"', person_columns, select)).fetchall():
            for column, value in zip(person_columns, row, strict=True):
                if value is not None and normalize_identifier(value) not in blocked:
                    people[k].add(source, column.split("__")[-1], value)


def _from_checkouts(con: duckdb.DuckDBPyConnection, people: Sequence[Person]) -> None:
    """The tokens of the Shopify checkouts and orders carrying a person's identifier: the
    checkout is theirs, and so are the storefront's events of it, on whatever device."""
    _load_values(con, people)
    for table, token in (("abandoned_checkouts", "token"), ("orders", "checkout_token")):
        if not has_table(con, "raw_shopify", table):
            continue
        # The buyer's columns only: an order shipped to them (their phone on its address) is
        # the buyer's checkout, not theirs.
        person_columns = [
            c
            for c, _ in columns(con, "raw_shopify", table)
            if is_person_column(c, table) and ("__" not in c or c.startswith("customer__"))
        ]
        if not person_columns:
            continue
        query = _matching(f'raw_shopify."{table}"', person_columns, f't."{token}"')
        for k, value in con.execute(query).fetchall():
            if value:
                people[k].add(*CHECKOUT_TOKEN, value)


def _own_devices(con: duckdb.DuckDBPyConnection, people: Sequence[Person]) -> None:
    """Analytics devices on which the person logged in or checked out, and nobody else did.

    A device's signals are the distinct users logged in and checkouts made on it. It is the
    k-th person's when every one of its signals is theirs: one signal of anyone else (another
    login, a checkout not theirs) makes it shared, and it stays. A device shared only by people
    erased together (a couple's laptop) is each of theirs: nobody else is left on it, as when
    the requests were handled one after another.
    """
    if not has_table(con, "raw_mixpanel", "events"):
        return
    _load_values(con, people)
    load_pairs(con, "_people_checkouts", ((k, v) for k, person in enumerate(people) for v in person.checkout_tokens))
    rows = con.execute(
        "WITH signals AS ("
        "  SELECT DISTINCT device_id, 'user' AS kind, lower(trim(user_id)) AS v FROM raw_mixpanel.events "
        "  WHERE device_id IS NOT NULL AND user_id IS NOT NULL "
        "  UNION SELECT DISTINCT device_id, 'checkout', lower(trim(checkout_id)) FROM raw_mixpanel.events "
        "  WHERE device_id IS NOT NULL AND checkout_id IS NOT NULL), "
        "theirs AS (SELECT k, 'user' AS kind, v FROM _people_values "
        "  UNION SELECT k, 'checkout', v FROM _people_checkouts), "
        "owned AS (SELECT t.k, s.device_id, s.kind, s.v FROM signals s JOIN theirs t USING (kind, v)), "
        "covered AS (SELECT device_id, count(DISTINCT (kind, v)) AS n FROM owned GROUP BY ALL), "
        "total AS (SELECT device_id, count(*) AS n FROM signals "
        "  WHERE device_id IN (SELECT device_id FROM covered) GROUP BY ALL) "
        "SELECT DISTINCT owned.k, owned.device_id FROM owned JOIN covered USING (device_id) "
        "JOIN total USING (device_id) WHERE covered.n = total.n"
    ).fetchall()
    for k, device in rows:
        people[k].add("mixpanel", "device_id", device)


def resolve_all(
    con: duckdb.DuckDBPyConnection, requests: Sequence[tuple[Sequence[str], Sequence[tuple[str, str, str]]]]
) -> list[Person]:
    """The person behind each request's emails and `(source, id_type, value)` identifiers.

    Every request is resolved on its own (two requests never merge into one person), but each
    step reads a table once for all of them: a night's backlog costs about what one request does.
    """
    people = [Person() for _ in requests]
    for person, (emails, identifiers) in zip(people, requests, strict=True):
        for email in emails:
            person.add("request", "email", email)
        for source, id_type, value in identifiers:
            person.add(source, id_type, value)
    _from_identity_map(con, people)
    blocked = _blocked_values(con)
    # Two hops: an email finds a Shopify customer, whose id finds the analytics user.
    for _ in range(2):
        _from_raw_person_records(con, people, blocked)
    _from_checkouts(con, people)
    _own_devices(con, people)
    _from_identity_map(con, people)
    return people


def resolve(con: duckdb.DuckDBPyConnection, emails: list[str], identifiers: list[tuple[str, str, str]] = ()) -> Person:
    """The person behind one request's emails and `(source, id_type, value)` identifiers."""
    return resolve_all(con, [(emails, identifiers)])[0]
