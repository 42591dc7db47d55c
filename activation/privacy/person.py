"""Who an erasure or access request is about: the resolved person and every identifier they have.

A request names an email (and perhaps more identifiers). The person behind it is found two ways,
so a request is honoured even before the first dbt build:

1. the identity map `marts.customer_identifiers`: every identifier of the customers that carry
   one of the request's identifiers (blocked identifiers, like a placeholder address, are never
   part of a real person's customer, so they are not swept in);
2. the raw person records (Shopify customers, HubSpot contacts, Klaviyo profiles, Mailchimp
   members) that carry one of them, whose ids, emails and phones join the set, and the
   analytics devices on which only this person ever logged in (a shared family laptop is not
   theirs alone and stays).

Values are compared normalized (`ingestion.common.erasure.normalize_identifier`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from ingestion.common.erasure import PERSON_RESOURCES, identifier_hash, is_person_column, normalize_identifier

# Placeholders that many people type; never treated as one person's identifier.
JUNK_VALUES = frozenset({"", "n/a", "na", "none", "null", "unknown", "test@test.com", "0000000000", "+10000000000"})


@dataclass
class Person:
    """Everything that identifies one person in the warehouse."""

    customer_ids: set[str] = field(default_factory=set)
    # (source, id_type, value as stored) from the identity map and the request itself.
    identifiers: set[tuple[str, str, str]] = field(default_factory=set)
    # Normalized values of every identifier, whatever its source: what rows are matched on.
    values: set[str] = field(default_factory=set)

    @property
    def emails(self) -> set[str]:
        return {v for v in self.values if "@" in v}

    def add(self, source: str, id_type: str, value: object) -> None:
        normalized = normalize_identifier(value)
        if normalized in JUNK_VALUES or len(normalized) < 3:
            return
        self.identifiers.add((source, id_type, str(value).strip()))
        self.values.add(normalized)

    def hashes(self) -> set[tuple[str, str, str]]:
        """(source, id_type, sha256) for the tombstone."""
        return {(s, t, identifier_hash(v)) for s, t, v in self.identifiers}


def parse_identifier(text: str) -> tuple[str, str, str]:
    """`source:id_type:value` (the value may contain colons) as a tuple."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"identifier {text!r} is not source:id_type:value (e.g. shopify:customer_id:123)")
    return parts[0], parts[1], parts[2]


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


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return (schema, table) in set(tables(con, schema))


def _blocked_values(con: duckdb.DuckDBPyConnection) -> set[str]:
    if not _has_table(con, "intermediate", "int_identity__resolved"):
        return set()
    rows = con.execute(
        "SELECT DISTINCT lower(trim(substr(node, length(kind) + 2))) FROM intermediate.int_identity__resolved "
        "WHERE is_blocked"
    ).fetchall()
    return {v for (v,) in rows}


def _load_values(con: duckdb.DuckDBPyConnection, person: Person) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE _person_values (v VARCHAR)")
    if person.values:
        con.executemany("INSERT INTO _person_values VALUES (?)", [[v] for v in sorted(person.values)])


def _from_identity_map(con: duckdb.DuckDBPyConnection, person: Person) -> None:
    if not _has_table(con, "marts", "customer_identifiers"):
        return
    _load_values(con, person)
    found = con.execute(
        "SELECT DISTINCT customer_id FROM marts.customer_identifiers "
        "WHERE lower(trim(id_value)) IN (SELECT v FROM _person_values)"
    ).fetchall()
    person.customer_ids |= {c for (c,) in found}
    if person.customer_ids:
        rows = con.execute(
            "SELECT source, id_type, id_value FROM marts.customer_identifiers WHERE customer_id IN "
            f"({', '.join('?' * len(person.customer_ids))})",
            sorted(person.customer_ids),
        ).fetchall()
        for source, id_type, value in rows:
            person.add(source, id_type, value)


def _from_raw_person_records(con: duckdb.DuckDBPyConnection, person: Person, blocked: set[str]) -> None:
    for schema, table in tables(con, "raw%"):
        if table not in PERSON_RESOURCES or not schema.startswith("raw_") or schema.endswith("_staging"):
            continue
        person_columns = [c for c, _ in columns(con, schema, table) if is_person_column(c, table)]
        if not person_columns:
            continue
        _load_values(con, person)
        match = " OR ".join(
            f'lower(trim(CAST("{c}" AS VARCHAR))) IN (SELECT v FROM _person_values)' for c in person_columns
        )
        select = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in person_columns)
        source = schema.removeprefix("raw_")
        for row in con.execute(f'SELECT {select} FROM "{schema}"."{table}" WHERE {match}').fetchall():
            for column, value in zip(person_columns, row, strict=True):
                if value is not None and normalize_identifier(value) not in blocked:
                    person.add(source, column.split("__")[-1], value)


def _checkout_tokens(con: duckdb.DuckDBPyConnection, person: Person) -> set[str]:
    """Tokens of the Shopify checkouts and orders that carry one of the person's identifiers."""
    tokens: set[str] = set()
    for table, token in (("abandoned_checkouts", "token"), ("orders", "checkout_token")):
        if not _has_table(con, "raw_shopify", table):
            continue
        person_columns = [c for c, _ in columns(con, "raw_shopify", table) if is_person_column(c, table)]
        if not person_columns:
            continue
        match = " OR ".join(
            f'lower(trim(CAST("{c}" AS VARCHAR))) IN (SELECT v FROM _person_values)' for c in person_columns
        )
        rows = con.execute(f'SELECT DISTINCT "{token}" FROM raw_shopify."{table}" WHERE {match}').fetchall()
        tokens |= {t for (t,) in rows if t}
    return tokens


def _own_devices(con: duckdb.DuckDBPyConnection, person: Person) -> None:
    """Analytics devices on which the person logged in or checked out, and nobody else did."""
    if not _has_table(con, "raw_mixpanel", "events"):
        return
    _load_values(con, person)
    con.execute("CREATE OR REPLACE TEMP TABLE _person_checkouts (v VARCHAR)")
    tokens = _checkout_tokens(con, person)
    if tokens:
        con.executemany("INSERT INTO _person_checkouts VALUES (?)", [[t] for t in sorted(tokens)])
    rows = con.execute(
        "WITH marked AS (SELECT device_id, "
        "lower(trim(user_id)) IN (SELECT v FROM _person_values) OR checkout_id IN (SELECT v FROM _person_checkouts) "
        "AS theirs, "
        "(user_id IS NOT NULL AND lower(trim(user_id)) NOT IN (SELECT v FROM _person_values)) "
        "OR (checkout_id IS NOT NULL AND checkout_id NOT IN (SELECT v FROM _person_checkouts)) AS someone_else "
        "FROM raw_mixpanel.events WHERE device_id IS NOT NULL) "
        "SELECT device_id FROM marked GROUP BY device_id "
        "HAVING bool_or(coalesce(theirs, false)) AND NOT bool_or(coalesce(someone_else, false))"
    ).fetchall()
    for (device,) in rows:
        person.add("mixpanel", "device_id", device)


def resolve(con: duckdb.DuckDBPyConnection, emails: list[str], identifiers: list[tuple[str, str, str]] = ()) -> Person:
    """The person behind a request's emails and `(source, id_type, value)` identifiers."""
    person = Person()
    for email in emails:
        person.add("request", "email", email)
    for source, id_type, value in identifiers:
        person.add(source, id_type, value)
    _from_identity_map(con, person)
    blocked = _blocked_values(con)
    # Two hops: an email finds a Shopify customer, whose id finds the analytics user.
    for _ in range(2):
        _from_raw_person_records(con, person, blocked)
    _own_devices(con, person)
    _from_identity_map(con, person)
    return person
