"""Finding a person's rows in every table of the warehouse, to export them or to delete them.

A row is the person's when one of its person columns (`ingestion.common.erasure.is_person_column`:
emails, phones, the vendors' person ids, `customer_id`) holds one of their identifiers, when a
checkout column holds the token of one of their checkouts (a storefront event of it on a shared
device), when it links a record to them (a HubSpot deal's association to their contact), when a
JSON or free-text payload column mentions one of their emails (the whole address) or names one
of their checkouts (a quarantined record, a ledger payload), when a quarantined record names them
by any identifier in a person field (read by field name, as the loaders read records), or, in the
identity models, when an identity node (`email:<value>`) is theirs, and then every row of the
identity records (`record_id`) those rows belong to. A dlt child row (an order's
line items, a member's tags) belongs to its parent: it goes with the rows
it hangs off by `_dlt_root_id`/`_dlt_parent_id`.

A payload that only links to them (a deal quarantined in HubSpot's own form, its
`associations.contacts.results[].id` naming their contact) is exported with their rows, and at
erasure rewritten without the link: the record is the shop's, as the load filter keeps it.

The tombstone and the erasure log (`privacy` schema) and the dbt seeds are never touched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from activation.privacy.person import Person, columns, load_pairs, tables
from ingestion.common.erasure import (
    CHECKOUT_FIELDS,
    LINK_ID,
    LINK_TYPE,
    PERSON_LINK_TYPES,
    RAW_LINKS_KEY,
    RAW_LINKS_MARK,
    TOMBSTONE_SCHEMA,
    checkout_key,
    identifier_hash,
    is_checkout_column,
    is_person_column,
    link_key,
    normalize_identifier,
    person_links,
    record_keys,
    without_erased_links,
)
from ingestion.common.quarantine import QUARANTINE_TABLE

UNTOUCHED_SCHEMAS = frozenset({TOMBSTONE_SCHEMA, "seeds", "information_schema", "pg_catalog"})
# Free-text or JSON columns that may carry a whole record: searched for the person's emails.
PAYLOAD_COLUMNS = frozenset({"record", "payload", "properties", "event_properties", "other_properties"})
# After an address in text: the end, or a character no address goes on with (a `.` only if
# no label follows it, as at the end of a sentence).
EMAIL_END = r"($|[^a-z0-9._-]|\.($|[^a-z0-9]))"
# Before an address: the start, a character no address has before its `@`, an opening quote
# (an apostrophe with no letter or digit before it: `o'brien@` is an address of its own), or a
# JSON escape (`\n`, `\u00a0`: a payload is JSON text, written with escapes).
EMAIL_START = r"(^|[^a-z0-9._%+'-]|(^|[^a-z0-9])'|\\[nrtbf]|\\u[0-9a-f]{4})"
# Identity-model columns holding `kind:value` nodes.
NODE_COLUMNS = frozenset({"node", "id_key", "link"})
# An identity record (`<record_type>:<key>`): a row of one is the person's when any row of it is.
RECORD_COLUMN = "record_id"
# The identity models' node of a checkout token (int_identity__occurrences): `shopify_checkout:<token>`.
CHECKOUT_NODE_KIND = "shopify_checkout"


def load_people(con: duckdb.DuckDBPyConnection, people: Sequence[Person]) -> None:
    """Each person's values, customer ids and emails as `(k, v)` temp tables the matches join."""
    for name, values_of in (
        ("_people_values", lambda p: p.values),
        ("_people_customers", lambda p: p.customer_ids),
        ("_people_emails", lambda p: p.emails),
        ("_people_links", _link_values),
        ("_people_checkouts", lambda p: p.checkout_tokens),
    ):
        load_pairs(con, name, ((k, v) for k, person in enumerate(people) for v in values_of(person)))


def _link_values(person: Person) -> set[str]:
    """`<link type>:<id>` for each id of the person a link of that type names (their HubSpot
    contact ids), as `match_query` builds it from a link row."""
    return {f"{link_type}:{normalize_identifier(value)}" for link_type, value in person_links(person.identifiers)}


def match_query(schema: str, table: str, table_columns: list[tuple[str, str]]) -> str | None:
    """SQL giving `(k, rid, dlt_id)` for each row of this table that is the k-th person's, or
    None if the table cannot hold any. Equalities are hash joins, so one scan serves any number
    of people; a payload is only searched when it holds an `@` at all."""
    root = table if "__" not in table else None
    names = {name for name, _ in table_columns}
    if "rowid" in {n.lower() for n in names}:
        # A column of that name hides DuckDB's row id, which the rows are deleted by.
        raise ValueError(f'{schema}.{table} has a column named "rowid": rename it so erasure can address rows')
    source = f'"{schema}"."{table}" AS t'
    keys = f"t.rowid AS rid, {'t._dlt_id' if '_dlt_id' in names else 'NULL'} AS dlt_id"
    parts = []
    for name, data_type in table_columns:
        if name.startswith("_dlt"):
            continue
        column = f't."{name}"'
        low = name.lower()
        if is_person_column(name, root):
            text = f"lower(trim(CAST({column} AS VARCHAR)))"
            parts.append(f"SELECT p.k, {keys} FROM {source} JOIN _people_values p ON {text} = p.v")
            if low.endswith("customer_id"):
                customer = f"CAST({column} AS VARCHAR)"
                parts.append(f"SELECT p.k, {keys} FROM {source} JOIN _people_customers p ON {customer} = p.v")
        elif is_checkout_column(name):
            # Only against their checkout tokens: a numeric Shopify checkout id is no person's.
            text = f"lower(trim(CAST({column} AS VARCHAR)))"
            parts.append(f"SELECT p.k, {keys} FROM {source} JOIN _people_checkouts p ON {text} = p.v")
        elif low in NODE_COLUMNS and data_type == "VARCHAR" and not schema.startswith("raw_"):
            node = f"lower(substr({column}, strpos({column}, ':') + 1))"
            parts.append(f"SELECT p.k, {keys} FROM {source} JOIN _people_values p ON {node} = p.v")
            checkout = f"'{CHECKOUT_NODE_KIND}:' || p.v"
            parts.append(f"SELECT p.k, {keys} FROM {source} JOIN _people_checkouts p ON lower({column}) = {checkout}")
        elif _is_payload(name, data_type):
            text = f"CAST({column} AS VARCHAR)"
            # Not an equality: a nested loop over (row, email). The `@` filter keeps it to rows
            # that can hold an email, and lowering the text once per row, not once per pair,
            # makes it 14 times faster (a ledger's payloads all hold one).
            payloads = f"SELECT {keys}, lower({text}) AS text FROM {source} WHERE contains({text}, '@')"
            # The whole address, not a part of another: `en@example.com` is in `ben@example.com`
            # (and `ben@example.co` in `ben@example.com`), and neither is Ben.
            start, end = (bound.replace("'", "''") for bound in (EMAIL_START, EMAIL_END))
            whole = f"regexp_matches(t.text, '{start}' || regexp_escape(p.v) || '{end}')"
            found = f"JOIN _people_emails p ON contains(t.text, p.v) AND {whole}"
            parts.append(f"SELECT p.k, t.rid, t.dlt_id FROM ({payloads}) AS t {found}")
            # A payload naming one of their checkouts (a quarantined storefront event), as the
            # value of a checkout field: spaces dropped, `"checkout_id":"<token>"`.
            payloads = (
                f"SELECT {keys}, replace(lower({text}), ' ', '') AS text FROM {source} "
                f"WHERE contains({text}, 'checkout_')"
            )
            fields = sorted(CHECKOUT_FIELDS)
            named = " OR ".join(f"""contains(t.text, '"{field}":"' || p.v || '"')""" for field in fields)
            parts.append(f"SELECT p.k, t.rid, t.dlt_id FROM ({payloads}) AS t JOIN _people_checkouts p ON {named}")
    if {LINK_TYPE, LINK_ID} <= names:
        # A link to a person (a deal's association to a contact) is the person's row.
        link = f"t.{LINK_TYPE} || ':' || lower(trim(CAST(t.{LINK_ID} AS VARCHAR)))"
        parts.append(f"SELECT p.k, {keys} FROM {source} JOIN _people_links p ON {link} = p.v")
    return " UNION ".join(parts) if parts else None


def _is_payload(name: str, data_type: str) -> bool:
    return data_type == "JSON" or (name.lower() in PAYLOAD_COLUMNS and data_type == "VARCHAR")


def raw_link_query(schema: str, table: str, column: str) -> str:
    """SQL giving `(k, rid)` for each row whose payload `column` (a quarantined record in the
    vendor's own form) links to the k-th person: HubSpot's `associations.<type>.results[].id`."""
    text = f'CAST(t."{column}" AS VARCHAR)'
    parts = []
    for link_type in PERSON_LINK_TYPES:
        ids = f"json_extract_string({text}, '$.{RAW_LINKS_KEY}.{link_type}.results[*].id')"
        linked = (
            f'SELECT t.rowid AS rid, unnest({ids}) AS link_id FROM "{schema}"."{table}" AS t '
            f"WHERE contains({text}, '{RAW_LINKS_MARK}') AND json_valid({text})"
        )
        found = f"JOIN _people_links p ON '{link_type}:' || lower(trim(l.link_id)) = p.v"
        parts.append(f"SELECT p.k, l.rid FROM ({linked}) AS l {found}")
    return " UNION ".join(parts)


def _mark_raw_links(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """`_people_raw_links (schema_name, table_name, column_name, k, rid)`: rows whose payload
    links to a loaded person; returns the (schema, table, column)s that have any."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _people_raw_links "
        "(schema_name VARCHAR, table_name VARCHAR, column_name VARCHAR, k INTEGER, rid BIGINT)"
    )
    if not con.execute("SELECT count(*) FROM _people_links").fetchall()[0][0]:
        return []  # nobody with a HubSpot contact: no payload can link to them
    for schema, table, table_columns in _candidate_tables(con):
        for name, data_type in table_columns:
            if _is_payload(name, data_type) and not name.startswith("_dlt"):
                query = raw_link_query(schema, table, name)
                con.execute(
                    f"INSERT INTO _people_raw_links SELECT ?, ?, ?, k, rid FROM ({query})", [schema, table, name]
                )
    return con.execute(
        "SELECT DISTINCT schema_name, table_name, column_name FROM _people_raw_links ORDER BY ALL"
    ).fetchall()


def _mark_whole_records(con: duckdb.DuckDBPyConnection, record_tables: list[tuple[str, str]]) -> None:
    """Every row of an identity record any row of which is the person's, in every identity
    table: the record's other identifiers (an order's checkout token, the shared device of a
    login) describe their record, and go now rather than at the next build."""
    if not record_tables:
        return
    found = " UNION ".join(
        f'SELECT m.k, t.{RECORD_COLUMN} AS record_id FROM "{schema}"."{table}" AS t '
        f"JOIN _people_rows AS m ON m.rid = t.rowid AND m.schema_name = '{schema}' AND m.table_name = '{table}'"
        for schema, table in record_tables
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _people_records AS SELECT DISTINCT k, record_id FROM ({found})")
    for schema, table in record_tables:
        con.execute(
            "INSERT INTO _people_rows SELECT $schema, $table, r.k, t.rowid, NULL "
            f'FROM "{schema}"."{table}" AS t JOIN _people_records AS r ON r.record_id = t.{RECORD_COLUMN} '
            "WHERE NOT EXISTS (SELECT 1 FROM _people_rows AS o "
            "WHERE o.schema_name = $schema AND o.table_name = $table AND o.k = r.k AND o.rid = t.rowid)",
            {"schema": schema, "table": table},
        )


def _unlink_payloads(con: duckdb.DuckDBPyConnection, people: Sequence[Person], deleted: Deleted) -> None:
    """Rewrite each payload that links to one of `people` without those links: the record (a
    deal the shop could not load) stays in quarantine, as the load filter keeps it."""
    links = frozenset(
        link_key(link_type, identifier_hash(value))
        for person in people
        for link_type, value in person_links(person.identifiers)
    )
    for schema, table, column in _mark_raw_links(con):
        # Rows deleted as theirs already (a quarantined record naming their email) are gone.
        rows = con.execute(
            f'SELECT t.rowid, CAST(t."{column}" AS VARCHAR), list(DISTINCT l.k) FROM "{schema}"."{table}" AS t '
            "JOIN _people_raw_links AS l ON l.rid = t.rowid "
            "WHERE l.schema_name = ? AND l.table_name = ? AND l.column_name = ? GROUP BY ALL",
            [schema, table, column],
        ).fetchall()
        key = f"{schema}.{table} (links removed)"
        for rid, text, owners in rows:
            cleaned = without_erased_links({"record": text}, links)["record"]
            con.execute(f'UPDATE "{schema}"."{table}" SET "{column}" = ? WHERE rowid = ?', [cleaned, rid])
            for k in owners:
                deleted.per_person[k][key] = deleted.per_person[k].get(key, 0) + 1
        if rows:
            deleted.per_table[key] = deleted.per_table.get(key, 0) + len(rows)


def _candidate_tables(con: duckdb.DuckDBPyConnection) -> Iterator[tuple[str, str, list[tuple[str, str]]]]:
    for schema, table in tables(con):
        if schema in UNTOUCHED_SCHEMAS or table.startswith("_dlt"):
            continue
        yield schema, table, columns(con, schema, table)


def _mark_quarantined(con: duckdb.DuckDBPyConnection, quarantine_tables: list[tuple[str, str, bool]]) -> None:
    """Add to `_people_rows` each record of `quarantine_tables` ((schema, table, whether it has a
    `resource` column)) whose person fields name a loaded person by any identifier (an id, a
    device; not only an email, which the payload match finds), or one of their checkouts. Read
    in Python with the loaders' own rule (`record_keys`): by field name, JSON or not.
    Quarantine tables hold the few records that failed their rules."""
    if not quarantine_tables:
        return
    owners: dict[str, set[int]] = {}
    for k, value in con.execute("SELECT k, v FROM _people_values").fetchall():
        owners.setdefault(identifier_hash(value), set()).add(k)
    for k, token in con.execute("SELECT k, v FROM _people_checkouts").fetchall():
        owners.setdefault(checkout_key(token), set()).add(k)
    if not owners:
        return
    for schema, table, has_resource in quarantine_tables:
        resource = "resource" if has_resource else "NULL"
        found = [
            (k, rid)
            for rid, record, resource_name in con.execute(
                f'SELECT rowid, CAST(record AS VARCHAR), {resource} FROM "{schema}"."{table}" WHERE record IS NOT NULL'
            ).fetchall()
            for key in record_keys(record, resource_name)
            for k in owners.get(key, ())
        ]
        if found:
            ks, rids = zip(*sorted(set(found)), strict=True)
            con.execute(
                "INSERT INTO _people_rows SELECT $schema, $table, f.k, f.rid, NULL "
                "FROM (SELECT unnest($ks::INTEGER[]) AS k, unnest($rids::BIGINT[]) AS rid) AS f "
                "WHERE NOT EXISTS (SELECT 1 FROM _people_rows AS o "
                "WHERE o.schema_name = $schema AND o.table_name = $table AND o.k = f.k AND o.rid = f.rid)",
                {"schema": schema, "table": table, "ks": list(ks), "rids": list(rids)},
            )


def _mark_matches(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """`_people_rows (schema_name, table_name, k, rid, dlt_id)`: every row of each loaded person,
    with the dlt children of their rows; returns the tables that have any."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _people_rows "
        "(schema_name VARCHAR, table_name VARCHAR, k INTEGER, rid BIGINT, dlt_id VARCHAR)"
    )
    lineage: list[tuple[str, str, list[str]]] = []
    record_tables: list[tuple[str, str]] = []
    quarantine_tables: list[tuple[str, str, bool]] = []
    for schema, table, table_columns in _candidate_tables(con):
        query = match_query(schema, table, table_columns)
        if query:
            con.execute(f"INSERT INTO _people_rows SELECT ?, ?, k, rid, dlt_id FROM ({query})", [schema, table])
        names = {name for name, _ in table_columns}
        # dlt names the parent in every child row, and the root too where the root merges.
        links = [c for c in ("_dlt_root_id", "_dlt_parent_id") if c in names]
        if "_dlt_parent_id" in links:
            lineage.append((schema, table, links))
        if RECORD_COLUMN in names and not schema.startswith("raw_"):
            record_tables.append((schema, table))
        if schema.startswith("raw_") and table == QUARANTINE_TABLE and "record" in names:
            quarantine_tables.append((schema, table, "resource" in names))
    _mark_quarantined(con, quarantine_tables)
    _mark_whole_records(con, record_tables)
    # Children of children: two passes reach grandchildren (a root id reaches them at once).
    for _ in range(2):
        for schema, table, links in lineage:
            # One equi-join per link, not one on `IN (root, parent)`, which would be a nested loop.
            hanging = " UNION ".join(
                f'SELECT m.k, t.rowid AS rid, t._dlt_id AS dlt_id FROM "{schema}"."{table}" AS t '
                f"JOIN _people_rows AS m ON m.dlt_id = t.{link} AND m.schema_name = $schema"
                for link in links
            )
            con.execute(
                f"INSERT INTO _people_rows SELECT $schema, $table, k, rid, dlt_id FROM ({hanging}) AS c "
                "WHERE NOT EXISTS (SELECT 1 FROM _people_rows AS o "
                "WHERE o.schema_name = $schema AND o.table_name = $table AND o.k = c.k AND o.rid = c.rid)",
                {"schema": schema, "table": table},
            )
    return con.execute("SELECT DISTINCT schema_name, table_name FROM _people_rows ORDER BY 1, 2").fetchall()


def select_rows(con: duckdb.DuckDBPyConnection, person: Person) -> dict[str, list[dict[str, Any]]]:
    """Every row of the person, by `schema.table` (tables without any are left out)."""
    load_people(con, [person])
    out: dict[str, list[dict[str, Any]]] = {}
    # Their rows, and the records that link to them (a quarantined deal's raw associations).
    found = sorted({*_mark_matches(con), *((schema, table) for schema, table, _ in _mark_raw_links(con))})
    for schema, table in found:
        cursor = con.execute(
            f'SELECT * FROM "{schema}"."{table}" WHERE rowid IN '
            "(SELECT rid FROM _people_rows WHERE schema_name = $s AND table_name = $t "
            "UNION SELECT rid FROM _people_raw_links WHERE schema_name = $s AND table_name = $t)",
            {"s": schema, "t": table},
        )
        names = [d[0] for d in cursor.description]
        out[f"{schema}.{table}"] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return out


@dataclass
class Deleted:
    per_person: list[dict[str, int]]  # rows by `schema.table`, in the order of the people
    per_table: dict[str, int]  # rows by `schema.table`: a row two people shared counts once


def delete_rows(con: duckdb.DuckDBPyConnection, people: Sequence[Person]) -> Deleted:
    """Delete every row of every person in one pass per table.

    A row that is two people's (a shared order, say) counts for each of them and is deleted once.
    """
    load_people(con, people)
    deleted = Deleted([{} for _ in people], {})
    touched = _mark_matches(con)
    counts = con.execute(
        "SELECT k, schema_name, table_name, count(DISTINCT rid) FROM _people_rows GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    for k, schema, table, count in counts:
        deleted.per_person[k][f"{schema}.{table}"] = count
    for schema, table in touched:
        deleted.per_table[f"{schema}.{table}"] = con.execute(
            f'DELETE FROM "{schema}"."{table}" WHERE rowid IN '
            "(SELECT rid FROM _people_rows WHERE schema_name = ? AND table_name = ?)",
            [schema, table],
        ).fetchall()[0][0]
    _unlink_payloads(con, people, deleted)
    return deleted
