"""What one audience wants delivered, and the difference from what the ledger says was delivered.

Consent comes first and is checked here a second time, whatever the audience model did: a row
is only ever sent when `marts.dim_customers` says the customer is known, has an email, is
subscribed (an unsubscribe or spam complaint in any platform wins), never bounced or
complained, and is not erased. Rows that fail are counted as `suppressed` and never sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb

from activation.audiences import AudienceConfig
from activation.destinations.base import Member
from activation.sync.holdouts import is_held_out
from activation.sync.ledger import LedgerRow, payload_hash

CUSTOMERS = "marts.dim_customers"


@dataclass
class Desired:
    """The audience's rows after the consent gate and the holdout draw."""

    members: dict[str, Member] = field(default_factory=dict)  # customer_id -> member to deliver
    held_out: dict[str, str] = field(default_factory=dict)  # customer_id -> assignment key
    suppressed: list[str] = field(default_factory=list)  # customer_ids the consent gate refused
    rows: int = 0
    # customer_id -> platforms whose own record says subscribed (dim_customers.subscribed_in);
    # None for a warehouse built before that column.
    subscribed_in: dict[str, frozenset[str]] | None = None


RETRIED_STATES = ("rejected", "skipped")


@dataclass
class Plan:
    adds: list[Member] = field(default_factory=list)
    updates: list[Member] = field(default_factory=list)
    removes: list[Member] = field(default_factory=list)
    unchanged: int = 0
    previous_members: int = 0
    # Adds of members the destination refused or skipped last time: sent again, but no change
    # to what the destination holds, so the change guard does not count them.
    retries: int = 0
    # Members the destination skipped last time and not sent again tonight (`hold_skipped`).
    waiting: int = 0
    # Members whose event (their checkout) the destination already took once (`hold_sent_events`).
    already_sent: int = 0

    @property
    def changes(self) -> int:
        return len(self.adds) + len(self.updates) + len(self.removes)


def _columns(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, str]:
    rows = conn.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    return dict(rows)


# Floating-point properties are sent to this many decimals. A sum of doubles (a revenue, a
# score) comes out of DuckDB's parallel aggregation in whatever order its threads finish, so
# the same data can differ in the last bits from one build to the next; sent as is, every such
# member would look changed and be sent again each night.
FLOAT_DECIMALS = 6
_FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL", "FLOAT4", "FLOAT8")


def _json_value(column: str, data_type: str) -> str:
    # Timestamps as ISO 8601 in UTC (what both vendors' date properties expect); the rest as
    # DuckDB's JSON (JSON columns embed as objects, numbers as numbers).
    if data_type.upper().startswith("TIMESTAMP"):
        return f"strftime(timezone('UTC', audience.\"{column}\"::timestamptz), '%Y-%m-%dT%H:%M:%SZ')"
    if data_type.upper() == "DATE":
        return f"strftime(audience.\"{column}\", '%Y-%m-%d')"
    if data_type.upper() in _FLOAT_TYPES:
        return f'round(audience."{column}", {FLOAT_DECIMALS})'
    return f'audience."{column}"'


def desired_members(conn: duckdb.DuckDBPyConnection, config: AudienceConfig) -> Desired:
    columns = _columns(conn, config.schema, config.table)
    if not columns:
        raise LookupError(f"audience {config.name}: {config.relation} is not in the warehouse; build it first")
    for needed in ("customer_id", "email", *config.audience.properties):
        if needed not in columns:
            raise LookupError(f"audience {config.name}: {config.relation} has no column {needed!r}")
    customers = _columns(conn, "marts", "dim_customers")
    erased = "coalesce(customers.is_erased, false)" if "is_erased" in customers else "false"
    subscribed_in = "customers.subscribed_in" if "subscribed_in" in customers else "null"
    properties = ", ".join(f"'{p}': {_json_value(p, columns[p])}" for p in config.audience.properties)
    event_id = f'audience."{config.event_id_column}"::varchar' if config.event_id_column else "null"
    props = f"to_json({{{properties}}})::varchar" if properties else "'{}'"
    rows = conn.execute(
        f"""
        select
            audience.customer_id::varchar,
            audience.email,
            {props},
            {event_id},
            coalesce(
                customers.identity_status = 'known'
                and customers.email is not null
                and customers.email_consent_status = 'subscribed'
                and not customers.is_email_bounced
                and not customers.has_marked_email_as_spam
                and not {erased},
                false
            ) as may_email,
            {subscribed_in}
        from {config.relation} as audience
        left join {CUSTOMERS} as customers on audience.customer_id = customers.customer_id
        """
    ).fetchall()
    desired = Desired(rows=len(rows), subscribed_in={} if "subscribed_in" in customers else None)
    for customer_id, email, props, event, may_email, platforms in rows:
        if desired.subscribed_in is not None and platforms:
            desired.subscribed_in[customer_id] = frozenset(p.strip() for p in platforms.split(","))
        if not may_email or not email:
            desired.suppressed.append(customer_id)
            continue
        if is_held_out(config.name, customer_id, config.holdout_share):
            desired.held_out[customer_id] = event or ""
            continue
        desired.members[customer_id] = Member(customer_id, email, json.loads(props), event)
    return desired


def diff(desired: dict[str, Member], ledger: dict[str, LedgerRow]) -> Plan:
    """Adds: wanted and not delivered (new, removed before, or refused last time). Updates:
    delivered with another payload. A new address is a removal of the old one and an add.
    Removals: delivered and no longer wanted."""
    plan = Plan(previous_members=sum(1 for row in ledger.values() if row.state == "member"))
    for customer_id, member in desired.items():
        row = ledger.get(customer_id)
        if row is None or row.state != "member":
            plan.adds.append(member)
            plan.retries += int(row is not None and row.state in RETRIED_STATES)
        elif row.email and row.email.lower() != member.email.lower():
            plan.removes.append(Member(customer_id, row.email))
            plan.adds.append(member)
        elif row.payload_hash != payload_hash(member):
            plan.updates.append(member)
        else:
            plan.unchanged += 1
    for customer_id, row in ledger.items():
        if row.state == "member" and customer_id not in desired and row.email:
            plan.removes.append(Member(customer_id, row.email))
    return plan


def _hold_adds(plan: Plan, ledger: dict[str, LedgerRow], held: Callable[[Member], bool]) -> int:
    """Take out of tonight's adds the members `held` says wait; how many. A held retry (a member
    refused or skipped last time) is no longer one of the night's retries."""
    kept = []
    for member in plan.adds:
        if not held(member):
            kept.append(member)
            continue
        row = ledger.get(member.customer_id)
        plan.retries -= int(row is not None and row.state in RETRIED_STATES)
    waiting = len(plan.adds) - len(kept)
    plan.adds = kept
    return waiting


def hold_skipped(plan: Plan, desired: Desired, ledger: dict[str, LedgerRow], destination: str) -> None:
    """Leave out of tonight's adds the members `destination` skipped last time (it cannot take
    them: not on its list, or not subscribed there) at the same address, unless tonight's load
    shows them subscribed on that platform. Asking again every night cost a lookup per member:
    31,659 a night for one Mailchimp audience at a million customers. A new address, or a
    subscription the platform's own record now shows, sends the member again."""
    subscribed_in = desired.subscribed_in
    if subscribed_in is None:
        return

    def still_skipped(member: Member) -> bool:
        row = ledger.get(member.customer_id)
        return (
            row is not None
            and row.state == "skipped"
            and (row.email or "").lower() == member.email.lower()
            and destination not in subscribed_in.get(member.customer_id, ())
        )

    plan.waiting += _hold_adds(plan, ledger, still_skipped)


def hold_sent_events(plan: Plan, ledger: dict[str, LedgerRow], sent: set[str]) -> None:
    """Leave out of tonight's adds the members whose event the destination already took once
    (`ledger.delivered_events`): the cart-abandonment rule's "not already sent this checkout".
    A shopper who returns to the same checkout and leaves again, or whose address or customer
    record changed since, would otherwise get its reminder a second time. Updates of members
    still on the list go on."""
    if sent:
        plan.already_sent += _hold_adds(plan, ledger, lambda member: member.event_id in sent)
