"""The CRM object types the sandbox serves (contacts, companies, deals): their properties, how
a store row becomes visible as of the world clock, and how HubSpot renders a record.

Every object type is one SQL view over its store table (`visible_sql`) whose columns are the
HubSpot property names, so listing, fetching and searching all filter and sort on the same
values they serve. Date-time properties are kept as epoch milliseconds: HubSpot stores
millisecond precision, and search filters compare epoch-millisecond values.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb

Kind = Literal["string", "number", "datetime", "bool", "id"]


@dataclass(frozen=True)
class Prop:
    """One HubSpot property: a SQL expression over the store table (it may use `$clock`) and
    the kind that decides how it is filtered and rendered."""

    sql: str
    kind: Kind = "string"


@dataclass(frozen=True)
class ObjectType:
    name: str  # path segment and association key, e.g. "contacts"
    singular: str  # used in association type names, e.g. "contact_to_company"
    table: str
    id_column: str
    modified: str  # HubSpot's last-modified property for this type
    change_columns: tuple[str, ...]  # store columns (besides created_at) stamped when a row changes
    fields: dict[str, Prop]
    defaults: tuple[str, ...]  # properties returned when the request names none
    searchable: tuple[str, ...]  # properties a search `query` string matches
    properties: dict[str, Prop] = field(init=False)

    def __post_init__(self) -> None:
        # Only changes that already happened count: a row's last modification is the latest of
        # its change timestamps that are <= the clock.
        changes = ", ".join(f"CASE WHEN {c} <= $clock THEN {c} END" for c in self.change_columns)
        props = {
            "hs_object_id": Prop(self.id_column, "id"),
            "createdate": Prop(_millis("created_at"), "datetime"),
            self.modified: Prop(_millis(f"greatest(created_at, {changes})"), "datetime"),
            **self.fields,
        }
        object.__setattr__(self, "properties", props)

    def visible_sql(self) -> str:
        """Rows that exist as of `$clock`: `id` plus one column per property."""
        cols = ", ".join(f'{p.sql} AS "{name}"' for name, p in self.properties.items())
        return f'SELECT {self.id_column} AS id, {cols} FROM "{self.table}" WHERE created_at <= $clock'

    def property_names(self, requested: list[str]) -> list[str]:
        """What a record shows: the requested properties HubSpot knows (unknown names are
        ignored, as HubSpot does), or the defaults when none are named; HubSpot always adds
        the creation date, the last-modified date and `hs_object_id`."""
        known = [p for p in requested if p in self.properties] if requested else list(self.defaults)
        return sorted({*known, "createdate", self.modified, "hs_object_id"})

    def render(self, row: dict[str, Any], names: list[str]) -> dict[str, Any]:
        """A record as HubSpot returns it (SimplePublicObject): every value a string or null."""
        return {
            "id": str(row["id"]),
            "properties": {n: render_value(self.properties[n].kind, row[n]) for n in names},
            "createdAt": iso_ms(row["createdate"]),
            "updatedAt": iso_ms(row[self.modified]),
            "archived": False,
        }


def _millis(timestamp_sql: str) -> str:
    """Epoch milliseconds, truncated (DuckDB's epoch_ms rounds, which could put a served time
    after the real one)."""
    return f"epoch_us({timestamp_sql}) // 1000"


def iso_ms(epoch_ms: int) -> str:
    """HubSpot's timestamp form: ISO-8601 UTC with milliseconds, e.g. 2026-10-17T15:00:02.571Z."""
    seconds, millis = divmod(int(epoch_ms), 1000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


def render_value(kind: Kind, value: Any) -> str | None:
    """HubSpot serves every property value as a string (numbers, booleans and ids included)."""
    if value is None:
        return None
    if kind == "datetime":
        return iso_ms(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "id":
        return str(int(value))
    if kind == "number":
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


_S = Prop

CONTACTS = ObjectType(
    name="contacts",
    singular="contact",
    table="hubspot_contacts",
    id_column="contact_id",
    modified="lastmodifieddate",
    change_columns=("optout_at", "updated_at"),
    fields={
        **{n: _S(n) for n in ("email", "firstname", "lastname", "phone", "city", "state", "country", "zip")},
        "lifecyclestage": _S("lifecyclestage"),
        "membership_tier": _S("membership_tier"),  # the shop's custom property
        "associatedcompanyid": Prop("company_id", "id"),
        # "Unsubscribed from all email": set once the contact's opt-out has happened.
        "hs_email_optout": Prop("coalesce(optout_at <= $clock, false)", "bool"),
    },
    defaults=("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    searchable=("firstname", "lastname", "email", "phone"),
)

COMPANIES = ObjectType(
    name="companies",
    singular="company",
    table="hubspot_companies",
    id_column="company_id",
    modified="hs_lastmodifieddate",
    change_columns=("updated_at",),
    fields={n: _S(n) for n in ("name", "domain", "industry", "city")},
    defaults=("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    searchable=("name", "domain"),
)

DEALS = ObjectType(
    name="deals",
    singular="deal",
    table="hubspot_deals",
    id_column="deal_id",
    modified="hs_lastmodifieddate",
    change_columns=("updated_at",),
    fields={
        "dealname": _S("dealname"),
        "amount": Prop("amount", "number"),
        "dealstage": _S("dealstage"),
        "pipeline": _S("pipeline"),
        "closedate": Prop(_millis("closedate"), "datetime"),
    },
    defaults=(
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ),
    searchable=("dealname", "pipeline", "dealstage"),
)

OBJECT_TYPES: dict[str, ObjectType] = {t.name: t for t in (CONTACTS, COMPANIES, DEALS)}
#: `associations=` accepts singular or plural names; the response is keyed by the plural.
_ASSOCIATION_NAMES = {
    **{t.name: t.name for t in OBJECT_TYPES.values()},
    **{t.singular: t.name for t in OBJECT_TYPES.values()},
}


@dataclass(frozen=True)
class Edge:
    """An association stored as a foreign key: `table.left_col` -> `table.right_col`."""

    table: str
    left: str
    left_col: str
    right: str
    right_col: str

    def involves_company(self) -> bool:
        return "companies" in (self.left, self.right)


EDGES = (
    Edge("hubspot_contacts", "contacts", "contact_id", "companies", "company_id"),
    Edge("hubspot_deals", "deals", "deal_id", "contacts", "contact_id"),
    Edge("hubspot_deals", "deals", "deal_id", "companies", "company_id"),
)


def named_type(name: str) -> ObjectType | None:
    """The object type an association path or parameter names (singular or plural)."""
    plural = _ASSOCIATION_NAMES.get(name.lower())
    return OBJECT_TYPES[plural] if plural else None


def association_targets(requested: list[str], source: ObjectType) -> list[str]:
    """Known association targets of `source`, in request order (unknown names are ignored)."""
    out: list[str] = []
    for name in requested:
        target = _ASSOCIATION_NAMES.get(name.lower())
        if target and target != source.name and target not in out:
            out.append(target)
    return out


def associations(
    db: duckdb.DuckDBPyConnection, clock: datetime, source: ObjectType, ids: list[int], targets: list[str]
) -> dict[int, dict[str, Any]]:
    """HubSpot's `associations` block for each of `ids`: {target: {"results": [{id, type}]}}.

    Only associated records that exist as of the clock are listed. A record's company is its
    primary company, which HubSpot lists twice: under the primary label (`contact_to_company`)
    and as `contact_to_company_unlabeled`."""
    out: dict[int, dict[str, Any]] = defaultdict(dict)
    for target in targets:
        edge = next(e for e in EDGES if {e.left, e.right} == {source.name, target})
        own, other = (edge.left_col, edge.right_col) if edge.left == source.name else (edge.right_col, edge.left_col)
        sql = (
            f'SELECT e.{own}, e.{other} FROM "{edge.table}" e'
            f" WHERE list_contains($ids, e.{own})"
            f" AND e.{other} IN (SELECT id FROM ({OBJECT_TYPES[target].visible_sql()}))"
            f" ORDER BY 1, 2"
        )
        kind = f"{source.singular}_to_{OBJECT_TYPES[target].singular}"
        kinds = (kind, f"{kind}_unlabeled") if edge.involves_company() else (kind,)
        linked: dict[int, list[dict[str, str]]] = defaultdict(list)
        for own_id, other_id in db.execute(sql, {"ids": ids, "clock": clock}).fetchall():
            linked[own_id] += [{"id": str(other_id), "type": k} for k in kinds]
        for own_id, results in linked.items():
            out[own_id][target] = {"results": results}
    return out
