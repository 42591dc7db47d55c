"""Finding a person's rows in every table of the warehouse, to export them or to delete them.

A row is the person's when one of its person columns (`ingestion.common.erasure.is_person_column`:
emails, phones, the vendors' person ids, `customer_id`) holds one of their identifiers, when a
JSON or free-text payload column mentions one of their emails (a quarantined record, a ledger
payload), or, in the identity models, when an identity node (`email:<value>`) is theirs. A dlt
child row (an order's line items, a member's tags) belongs to its parent: it goes with the rows
it hangs off by `_dlt_root_id`/`_dlt_parent_id`.

The tombstone and the erasure log (`privacy` schema) and the dbt seeds are never touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb

from activation.privacy.person import Person, columns, tables
from ingestion.common.erasure import TOMBSTONE_SCHEMA, is_person_column

UNTOUCHED_SCHEMAS = frozenset({TOMBSTONE_SCHEMA, "seeds", "information_schema", "pg_catalog"})
# Free-text or JSON columns that may carry a whole record: searched for the person's emails.
PAYLOAD_COLUMNS = frozenset({"record", "payload", "properties", "event_properties", "other_properties"})
# Identity-model columns holding `kind:value` nodes.
NODE_COLUMNS = frozenset({"node", "id_key", "link"})


def load_person(con: duckdb.DuckDBPyConnection, person: Person) -> None:
    """The person's values, customer ids and emails as temp tables the predicates read."""
    for name, values in (
        ("_person_values", person.values),
        ("_person_customers", person.customer_ids),
        ("_person_emails", person.emails),
    ):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} (v VARCHAR)")
        if values:
            con.executemany(f"INSERT INTO {name} VALUES (?)", [[v] for v in sorted(values)])


def row_predicate(schema: str, table: str, table_columns: list[tuple[str, str]]) -> str | None:
    """SQL that is true for the person's rows of this table, or None if it cannot hold any."""
    root = table if "__" not in table else None
    terms = []
    for name, data_type in table_columns:
        if name.startswith("_dlt"):
            continue
        quoted = f'"{name}"'
        low = name.lower()
        if is_person_column(name, root):
            text = f"lower(trim(CAST({quoted} AS VARCHAR)))"
            terms.append(f"{text} IN (SELECT v FROM _person_values)")
            if low.endswith("customer_id"):
                terms.append(f"CAST({quoted} AS VARCHAR) IN (SELECT v FROM _person_customers)")
        elif low in NODE_COLUMNS and data_type == "VARCHAR" and not schema.startswith("raw_"):
            terms.append(f"lower(substr({quoted}, strpos({quoted}, ':') + 1)) IN (SELECT v FROM _person_values)")
        elif data_type == "JSON" or (low in PAYLOAD_COLUMNS and data_type == "VARCHAR"):
            terms.append(f"EXISTS (SELECT 1 FROM _person_emails WHERE contains(lower(CAST({quoted} AS VARCHAR)), v))")
    return " OR ".join(f"({t})" for t in terms) if terms else None


def _candidate_tables(con: duckdb.DuckDBPyConnection) -> Iterator[tuple[str, str, list[tuple[str, str]]]]:
    for schema, table in tables(con):
        if schema in UNTOUCHED_SCHEMAS or table.startswith("_dlt"):
            continue
        yield schema, table, columns(con, schema, table)


def _mark_matches(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    """Each table's predicate, and the `_dlt_id`s of matched rows and of their dlt children."""
    con.execute("CREATE OR REPLACE TEMP TABLE _person_dlt_ids (schema_name VARCHAR, v VARCHAR)")
    predicates: dict[tuple[str, str], str] = {}
    lineage: list[tuple[str, str]] = []
    for schema, table, table_columns in _candidate_tables(con):
        names = {c for c, _ in table_columns}
        predicate = row_predicate(schema, table, table_columns)
        if predicate and "_dlt_id" in names:
            con.execute(
                f'INSERT INTO _person_dlt_ids SELECT ?, _dlt_id FROM "{schema}"."{table}" WHERE {predicate}',
                [schema],
            )
        if "_dlt_parent_id" in names:
            lineage.append((schema, table))
        predicates[(schema, table)] = predicate
    # Children of children: two passes reach grandchildren; every child also names its root.
    for _ in range(2):
        for schema, table in lineage:
            con.execute(
                f'INSERT INTO _person_dlt_ids SELECT ?, _dlt_id FROM "{schema}"."{table}" '
                "WHERE (_dlt_root_id IN (SELECT v FROM _person_dlt_ids WHERE schema_name = ?) "
                "OR _dlt_parent_id IN (SELECT v FROM _person_dlt_ids WHERE schema_name = ?)) "
                "AND _dlt_id NOT IN (SELECT v FROM _person_dlt_ids WHERE schema_name = ?)",
                [schema, schema, schema, schema],
            )
    for schema, table in lineage:
        child = f"_dlt_id IN (SELECT v FROM _person_dlt_ids WHERE schema_name = '{schema}')"
        own = predicates.get((schema, table))
        predicates[(schema, table)] = f"({own}) OR ({child})" if own else child
    return {key: p for key, p in predicates.items() if p}


def select_rows(con: duckdb.DuckDBPyConnection, person: Person) -> dict[str, list[dict[str, Any]]]:
    """Every row of the person, by `schema.table` (tables without any are left out)."""
    load_person(con, person)
    out: dict[str, list[dict[str, Any]]] = {}
    for (schema, table), predicate in _mark_matches(con).items():
        cursor = con.execute(f'SELECT * FROM "{schema}"."{table}" WHERE {predicate}')
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        if rows:
            out[f"{schema}.{table}"] = rows
    return out


def delete_rows(con: duckdb.DuckDBPyConnection, person: Person) -> dict[str, int]:
    """Delete every row of the person; rows deleted by `schema.table`."""
    load_person(con, person)
    deleted: dict[str, int] = {}
    for (schema, table), predicate in _mark_matches(con).items():
        count = con.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE {predicate}').fetchall()[0][0]
        if count:
            con.execute(f'DELETE FROM "{schema}"."{table}" WHERE {predicate}')
            deleted[f"{schema}.{table}"] = count
    return deleted
