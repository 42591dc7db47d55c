"""The run report's sections, each read from the marts and the activation ledger.

Every section stands on its own: a table that does not exist yet (before the first push, on a
warehouse built by an older version) or holds no rows gives a note saying so, never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from orchestration.report.charts import BarChart
from orchestration.report.reading import count, decimal, money, points, records, share, table_exists

FUNNEL = "marts.fct_checkout_funnel_steps"
EXIT_CAUSES = "marts.fct_checkout_exit_causes"
CUSTOMERS = "marts.dim_customers"
IDENTIFIERS = "marts.customer_identifiers"
LEDGER = "activation.sync_ledger"
SYNC_LOG = "activation.sync_log"
CAMPAIGNS = "marts.campaign_performance"
HOLDOUTS = "marts.activation_holdout_results"
CAMPAIGNS_SHOWN = 20


@dataclass
class Table:
    """A table as the page shows it: formatted text, first column a label, the rest numbers."""

    id: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    id: str
    title: str
    intro: str
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[BarChart] = field(default_factory=list)
    # Key numbers, also put on the asset's materialization.
    figures: dict[str, int | float] = field(default_factory=dict)


def _missing(table: str) -> str:
    return f"{table} does not exist yet in this warehouse."


def _empty(table: str) -> str:
    return f"{table} has no rows yet."


def funnel_section(con: duckdb.DuckDBPyConnection, run_id: str) -> Section:
    section = Section(
        "funnel",
        "Checkout funnel by step",
        "Checkouts that reached each step, went on, or left there (every checkout in the warehouse).",
    )
    if not table_exists(con, FUNNEL):
        section.notes.append(_missing(FUNNEL))
        return section
    steps = records(
        con,
        f"""SELECT step, min(step_number) AS step_number, sum(checkouts_reached)::BIGINT AS reached,
                   sum(checkouts_continued)::BIGINT AS continued, sum(checkouts_dropped)::BIGINT AS dropped,
                   sum(cart_value_dropped) AS value_dropped
            FROM {FUNNEL} GROUP BY step ORDER BY step_number, step""",
    )
    if not steps:
        section.notes.append(_empty(FUNNEL))
        return section
    started = steps[0]["reached"] or 0
    rows = []
    for s in steps:
        drop_rate = s["dropped"] / s["reached"] if s["reached"] else None
        of_started = s["reached"] / started if started else None
        rows.append(
            [s["step"], count(s["reached"]), share(of_started), count(s["continued"]), count(s["dropped"])]
            + [share(drop_rate), money(s["value_dropped"])]
        )
    section.tables.append(
        Table(
            "funnel-table",
            ["Step", "Reached", "Of started", "Continued", "Left here", "Drop-off", "Cart value left"],
            rows,
        )
    )
    section.charts.append(
        BarChart(
            "Checkouts reaching each step",
            [s["step"] for s in steps],
            [float(s["reached"] or 0) for s in steps],
            [count(s["reached"]) for s in steps],
        )
    )
    section.figures = {"checkouts_started": int(started), "checkouts_completed": int(steps[-1]["reached"] or 0)}
    return section


def exit_causes_section(con: duckdb.DuckDBPyConnection, run_id: str) -> Section:
    section = Section(
        "exit-causes",
        "Drop-off by exit cause",
        "Why checkouts were left: the cause measured at the step where people left.",
    )
    if not table_exists(con, EXIT_CAUSES):
        section.notes.append(_missing(EXIT_CAUSES))
        return section
    causes = records(
        con,
        f"""SELECT exit_cause, exit_step, exits_measured, share_of_exits, exit_rate, checkouts_exposed
            FROM {EXIT_CAUSES} ORDER BY exits_measured DESC NULLS LAST, exit_cause""",
    )
    if not causes:
        section.notes.append(_empty(EXIT_CAUSES))
        return section
    section.tables.append(
        Table(
            "exit-causes-table",
            ["Cause", "Step", "Exits", "Share of exits", "Exit rate", "Checkouts exposed"],
            [
                [c["exit_cause"], c["exit_step"], count(c["exits_measured"]), share(c["share_of_exits"])]
                + [share(c["exit_rate"]), count(c["checkouts_exposed"])]
                for c in causes
            ],
        )
    )
    section.charts.append(
        BarChart(
            "Exits by cause",
            [c["exit_cause"] for c in causes],
            [float(c["exits_measured"] or 0) for c in causes],
            [f"{count(c['exits_measured'])} ({share(c['share_of_exits'])})" for c in causes],
        )
    )
    section.figures = {"exits_measured": int(sum(c["exits_measured"] or 0 for c in causes))}
    return section


_SIZE_BUCKETS = """CASE WHEN n >= 10 THEN '10+' WHEN n >= 5 THEN '5-9' ELSE n::VARCHAR END"""


def identity_section(con: duckdb.DuckDBPyConnection, run_id: str) -> Section:
    section = Section(
        "identity",
        "Identity matching",
        "Customers resolved from every identifier seen in any source: how many, how many identifiers each, "
        "known (with an email, phone or account) or anonymous (devices only).",
    )
    if table_exists(con, CUSTOMERS):
        statuses = records(
            con, f"SELECT identity_status, count(*) AS customers FROM {CUSTOMERS} GROUP BY 1 ORDER BY 2 DESC, 1"
        )
        if statuses:
            total = sum(s["customers"] for s in statuses)
            section.tables.append(
                Table(
                    "identity-status-table",
                    ["Identity status", "Customers", "Share"],
                    [[s["identity_status"], count(s["customers"]), share(s["customers"] / total)] for s in statuses]
                    + [["all customers", count(total), share(1.0)]],
                )
            )
            section.charts.append(
                BarChart(
                    "Customers by identity status",
                    [s["identity_status"] or "unknown" for s in statuses],
                    [float(s["customers"]) for s in statuses],
                    [count(s["customers"]) for s in statuses],
                )
            )
            section.figures["customers"] = int(total)
            for s in statuses:
                section.figures[f"customers_{s['identity_status']}"] = int(s["customers"])
        else:
            section.notes.append(_empty(CUSTOMERS))
    else:
        section.notes.append(_missing(CUSTOMERS))

    if not table_exists(con, IDENTIFIERS):
        section.notes.append(_missing(IDENTIFIERS))
        return section
    per_customer = f"""per_customer AS (
        SELECT customer_id, count(*) AS n, count(DISTINCT source) AS sources FROM {IDENTIFIERS} GROUP BY 1)"""
    stats = records(
        con,
        f"""WITH {per_customer}
            SELECT count(*) AS customers, sum(n)::BIGINT AS identifiers, avg(n) AS mean, median(n) AS median,
                   max(n) AS largest, count(*) FILTER (WHERE n > 1) AS linked,
                   count(*) FILTER (WHERE sources > 1) AS cross_source
            FROM per_customer""",
    )[0]
    if not stats["customers"]:
        section.notes.append(_empty(IDENTIFIERS))
        return section
    section.tables.append(
        Table(
            "identity-stats-table",
            ["Measure", "Value"],
            [
                ["customers with identifiers", count(stats["customers"])],
                ["identifiers", count(stats["identifiers"])],
                ["identifiers per customer (mean)", decimal(stats["mean"])],
                ["identifiers per customer (median)", decimal(stats["median"])],
                ["identifiers of the largest customer", count(stats["largest"])],
                ["customers with more than one identifier", count(stats["linked"])],
                ["customers matched across sources", count(stats["cross_source"])],
                ["share matched across sources", share(stats["cross_source"] / stats["customers"])],
            ],
        )
    )
    sizes = records(
        con,
        f"""WITH {per_customer}
            SELECT {_SIZE_BUCKETS} AS bucket, min(n) AS lowest, count(*) AS customers
            FROM per_customer GROUP BY 1 ORDER BY lowest""",
    )
    section.tables.append(
        Table(
            "identity-sizes-table",
            ["Identifiers per customer", "Customers"],
            [[s["bucket"], count(s["customers"])] for s in sizes],
        )
    )
    section.charts.append(
        BarChart(
            "Customers by number of identifiers",
            [f"{s['bucket']} identifier(s)" for s in sizes],
            [float(s["customers"]) for s in sizes],
            [count(s["customers"]) for s in sizes],
        )
    )
    sources = records(
        con,
        f"""SELECT source, count(*) AS identifiers, count(DISTINCT customer_id) AS customers
            FROM {IDENTIFIERS} GROUP BY 1 ORDER BY 1""",
    )
    section.tables.append(
        Table(
            "identity-sources-table",
            ["Source", "Identifiers", "Customers"],
            [[s["source"], count(s["identifiers"]), count(s["customers"])] for s in sources],
        )
    )
    section.figures["identifiers"] = int(stats["identifiers"])
    section.figures["customers_matched_across_sources"] = int(stats["cross_source"])
    return section


def audiences_section(con: duckdb.DuckDBPyConnection, run_id: str) -> Section:
    section = Section(
        "audiences",
        "Audiences pushed",
        "Members each destination holds per audience (from the sync ledger), and what this run changed "
        "(from the sync log): adds, updates and removals delivered, records the vendor refused (sent again "
        "next run) and records skipped (not subscribed there).",
    )
    if not table_exists(con, LEDGER):
        section.notes.append(_missing(LEDGER) + " It is created by the first push.")
        return section
    sizes = records(
        con,
        f"""SELECT destination, audience, count(*) FILTER (WHERE state = 'member') AS members
            FROM {LEDGER} GROUP BY ALL""",
    )
    changes: dict[tuple[str, str], dict[str, Any]] = {}
    shown_run = run_id
    if table_exists(con, SYNC_LOG):
        logged = records(con, f"SELECT count(*) AS n FROM {SYNC_LOG} WHERE run_id = ?", [run_id])[0]["n"]
        if not logged:
            # A report made outside a pushing run (materialized alone) shows the last pushing run.
            last = records(con, f"SELECT run_id FROM {SYNC_LOG} ORDER BY logged_at DESC LIMIT 1")
            if last:
                shown_run = last[0]["run_id"]
                section.notes.append(f"This run pushed nothing; changes shown are those of run {shown_run}.")
        for row in records(
            con,
            f"""SELECT destination, audience,
                       count(*) FILTER (WHERE action = 'add' AND result = 'ok') AS adds,
                       count(*) FILTER (WHERE action = 'update' AND result = 'ok') AS updates,
                       count(*) FILTER (WHERE action = 'remove' AND result = 'ok') AS removals,
                       count(*) FILTER (WHERE result = 'rejected') AS errors,
                       count(*) FILTER (WHERE result = 'skipped') AS skipped
                FROM {SYNC_LOG} WHERE run_id = ? GROUP BY ALL""",
            [shown_run],
        ):
            changes[(row["destination"], row["audience"])] = row
    else:
        section.notes.append(_missing(SYNC_LOG))
    keys = sorted({(s["destination"], s["audience"]) for s in sizes} | set(changes))
    if not keys:
        section.notes.append(_empty(LEDGER))
        return section
    members = {(s["destination"], s["audience"]): s["members"] for s in sizes}
    rows = []
    for key in keys:
        change = changes.get(key, {})
        rows.append(
            [key[1], key[0], count(members.get(key, 0))]
            + [count(change.get(c, 0)) for c in ("adds", "updates", "removals", "errors", "skipped")]
        )
    section.tables.append(
        Table(
            "audiences-table",
            ["Audience", "Destination", "Members", "Adds", "Updates", "Removals", "Errors", "Skipped"],
            rows,
        )
    )
    section.charts.append(
        BarChart(
            "Members per audience and destination",
            [f"{audience} · {destination}" for destination, audience in keys],
            [float(members.get(k, 0)) for k in keys],
            [count(members.get(k, 0)) for k in keys],
            series=[0 if destination == "klaviyo" else 1 for destination, _ in keys],
        )
    )
    for column in ("adds", "updates", "removals", "errors"):
        section.figures[f"push_{column}"] = int(sum(c.get(column, 0) for c in changes.values()))
    section.figures["audience_members"] = int(sum(members.values()))
    return section


def campaigns_section(con: duckdb.DuckDBPyConnection, run_id: str) -> Section:
    section = Section(
        "campaigns",
        "Campaign results",
        f"The {CAMPAIGNS_SHOWN} most recent email campaigns: reach, engagement, and attributed orders and revenue.",
    )
    if not table_exists(con, CAMPAIGNS):
        section.notes.append(_missing(CAMPAIGNS))
        return section
    campaigns = records(
        con,
        f"""SELECT platform, campaign_name, sent_at, sends, unique_open_rate, unique_click_rate, conversions, revenue
            FROM {CAMPAIGNS} ORDER BY sent_at DESC NULLS LAST, campaign_name LIMIT {CAMPAIGNS_SHOWN}""",
    )
    if not campaigns:
        section.notes.append(_empty(CAMPAIGNS))
        return section
    section.tables.append(
        Table(
            "campaigns-table",
            ["Campaign", "Platform", "Sent", "Sends", "Unique opens", "Unique clicks", "Conversions", "Revenue"],
            [
                [c["campaign_name"], c["platform"], c["sent_at"].strftime("%Y-%m-%d") if c["sent_at"] else "–"]
                + [count(c["sends"]), share(c["unique_open_rate"]), share(c["unique_click_rate"])]
                + [count(c["conversions"]), money(c["revenue"])]
                for c in campaigns
            ],
        )
    )
    section.charts.append(
        BarChart(
            "Attributed revenue per campaign",
            [c["campaign_name"] for c in campaigns],
            [float(c["revenue"] or 0) for c in campaigns],
            [money(c["revenue"]) for c in campaigns],
            series=[0 if c["platform"] == "klaviyo" else 1 for c in campaigns],
        )
    )
    section.figures = {"campaign_revenue_shown": round(sum(float(c["revenue"] or 0) for c in campaigns), 2)}
    return section


def holdouts_section(con: duckdb.DuckDBPyConnection, run_id: str) -> Section:
    section = Section(
        "holdouts",
        "Holdout results",
        "Does pushing an audience work? Customers sent (treated) against the share held back, converting within "
        "the window after they entered; lifts with 95% confidence intervals. Entries still inside the window are "
        "counted apart.",
    )
    if not table_exists(con, HOLDOUTS):
        section.notes.append(_missing(HOLDOUTS))
        return section
    results = records(
        con,
        f"""SELECT audience, treated_entries, treated_conversion_rate, holdout_entries, holdout_conversion_rate,
                   conversion_lift, conversion_lift_ci_low, conversion_lift_ci_high,
                   revenue_lift_per_entry, revenue_lift_ci_low, revenue_lift_ci_high, entries_in_window
            FROM {HOLDOUTS} ORDER BY audience""",
    )
    if not results:
        section.notes.append(_empty(HOLDOUTS) + " Entries are measured once their conversion window has passed.")
        return section
    section.tables.append(
        Table(
            "holdouts-table",
            ["Audience", "Treated", "Treated conv.", "Held out", "Held-out conv.", "Lift", "Lift 95% CI"]
            + ["Revenue lift / entry", "Revenue 95% CI", "In window"],
            [
                [r["audience"], count(r["treated_entries"]), share(r["treated_conversion_rate"])]
                + [count(r["holdout_entries"]), share(r["holdout_conversion_rate"]), points(r["conversion_lift"])]
                + [f"{points(r['conversion_lift_ci_low'])} to {points(r['conversion_lift_ci_high'])}"]
                + [money(r["revenue_lift_per_entry"])]
                + [f"{money(r['revenue_lift_ci_low'])} to {money(r['revenue_lift_ci_high'])}"]
                + [count(r["entries_in_window"])]
                for r in results
            ],
        )
    )
    measured = [
        r for r in results if r["treated_conversion_rate"] is not None or r["holdout_conversion_rate"] is not None
    ]
    if measured:
        labels, values, shown, series = [], [], [], []
        for r in measured:
            for group, rate, index in (
                ("treated", r["treated_conversion_rate"], 0),
                ("held out", r["holdout_conversion_rate"], 1),
            ):
                labels.append(f"{r['audience']} · {group}")
                values.append(float(rate or 0))
                shown.append(share(rate))
                series.append(index)
        section.charts.append(BarChart("Conversion rate, treated against held out", labels, values, shown, series))
    else:
        section.notes.append("No entry has passed its conversion window yet.")
    return section


SECTIONS: list[Callable[[duckdb.DuckDBPyConnection, str], Section]] = [
    funnel_section,
    exit_causes_section,
    identity_section,
    audiences_section,
    campaigns_section,
    holdouts_section,
]


def read_sections(con: duckdb.DuckDBPyConnection, run_id: str) -> list[Section]:
    """Every section; one that cannot be read (a column renamed in a mart) says why and the rest still show."""
    sections = []
    for build in SECTIONS:
        try:
            sections.append(build(con, run_id))
        except duckdb.Error as exc:
            name = build.__name__.removesuffix("_section").replace("_", "-")
            sections.append(Section(name, name.replace("-", " ").capitalize(), "", notes=[f"Could not be read: {exc}"]))
    return sections
