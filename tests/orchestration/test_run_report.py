"""The run report from a small warehouse built here: the page parses, holds every section, and its
numbers are the tables'; with tables missing or empty each section says so instead of failing."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from activation.sync.ledger import ensure_ledger
from orchestration.defs.serving.run_report import run_report
from orchestration.report import build_report
from orchestration.resources import WarehouseResource

RUN_ID = "run-tonight"
SECTION_IDS = ["funnel", "exit-causes", "identity", "audiences", "campaigns", "holdouts"]
NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
YESTERDAY = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)

# (step, step_number, device, reached, continued, dropped, cart value dropped)
FUNNEL_ROWS = [
    ("contact", 1, "mobile", 600, 420, 180, 9000.25),
    ("contact", 1, "desktop", 400, 300, 100, 5000.0),
    ("shipping", 2, "mobile", 420, 250, 170, 8000.0),
    ("shipping", 2, "desktop", 300, 230, 70, 3500.5),
    ("payment", 3, "mobile", 250, 200, 50, 2000.0),
    ("payment", 3, "desktop", 230, 210, 20, 900.0),
    ("completed", 4, "mobile", 200, 0, 0, 0.0),
    ("completed", 4, "desktop", 210, 0, 0, 0.0),
]
# customer -> [(source, id_type)], and its identity status
IDENTIFIERS = {
    "cus_a": ("known", [("shopify", "email"), ("hubspot", "email"), ("mixpanel", "device_id")]),
    "cus_b": ("known", [("klaviyo", "email")]),
    "cus_c": ("known", [("mixpanel", "device_id")] * 12),
    "cus_d": ("anonymous", [("mixpanel", "device_id"), ("mixpanel", "device_id")]),
    "cus_e": ("anonymous", [("mixpanel", "device_id")]),
}


def _make_marts(con: duckdb.DuckDBPyConnection) -> None:
    """The marts the report reads, with their real column names and types."""
    con.execute("CREATE SCHEMA marts")
    con.execute(
        """CREATE TABLE marts.fct_checkout_funnel_steps (checkout_date DATE, device_type VARCHAR, step VARCHAR,
           step_number INTEGER, checkouts_reached BIGINT, checkouts_continued BIGINT, checkouts_dropped BIGINT,
           cart_value_dropped DOUBLE, drop_off_rate DOUBLE)"""
    )
    con.executemany(
        "INSERT INTO marts.fct_checkout_funnel_steps VALUES ('2026-11-01', ?, ?, ?, ?, ?, ?, ?, NULL)",
        [(d, s, n, r, c, x, v) for s, n, d, r, c, x, v in FUNNEL_ROWS],
    )
    con.execute(
        """CREATE TABLE marts.fct_checkout_exit_causes (exit_cause VARCHAR, exit_step VARCHAR, exit_signal VARCHAR,
           exits_measured BIGINT, share_of_exits DOUBLE, checkouts_exposed BIGINT, exit_rate DOUBLE)"""
    )
    con.execute(
        """INSERT INTO marts.fct_checkout_exit_causes VALUES
           ('extra_costs', 'shipping', 's', 240, 0.5, 720, 0.3333333),
           ('forced_account', 'contact', 's', 150, 0.3125, 500, 0.3),
           ('payment', 'payment', 's', 70, 0.1458333, 480, NULL),
           ('low_intent', 'contact', 's', 20, 0.0416667, 1000, 0.02)"""
    )
    con.execute("CREATE TABLE marts.dim_customers (customer_id VARCHAR, identity_status VARCHAR, email VARCHAR)")
    con.executemany(
        "INSERT INTO marts.dim_customers VALUES (?, ?, NULL)", [(c, s) for c, (s, _) in IDENTIFIERS.items()]
    )
    con.execute(
        """CREATE TABLE marts.customer_identifiers
           (customer_id VARCHAR, source VARCHAR, id_type VARCHAR, id_value VARCHAR)"""
    )
    con.executemany(
        "INSERT INTO marts.customer_identifiers VALUES (?, ?, ?, ?)",
        [(c, src, kind, f"{c}-{i}") for c, (_, ids) in IDENTIFIERS.items() for i, (src, kind) in enumerate(ids)],
    )
    con.execute(
        """CREATE TABLE marts.campaign_performance (platform VARCHAR, campaign_id VARCHAR, campaign_name VARCHAR,
           sent_at TIMESTAMPTZ, sends BIGINT, unique_open_rate DOUBLE, unique_click_rate DOUBLE, conversions BIGINT,
           revenue DOUBLE)"""
    )
    con.execute(
        """INSERT INTO marts.campaign_performance VALUES
           ('klaviyo', 'k1', 'Autumn sale', '2026-10-20 15:00:00+00', 1200, 0.41, 0.052, 14, 1834.5),
           ('mailchimp', 'm1', 'Newsletter #7', '2026-10-27 15:00:00+00', 800, 0.305, 0.02, 3, 257.02)"""
    )
    con.execute(
        """CREATE TABLE marts.activation_holdout_results (audience VARCHAR, treated_entries BIGINT,
           treated_conversions BIGINT, treated_conversion_rate DOUBLE, treated_revenue_per_entry DOUBLE,
           holdout_entries BIGINT, holdout_conversions BIGINT, holdout_conversion_rate DOUBLE,
           holdout_revenue_per_entry DOUBLE, conversion_lift DOUBLE, conversion_lift_ci_low DOUBLE,
           conversion_lift_ci_high DOUBLE, revenue_lift_per_entry DOUBLE, revenue_lift_ci_low DOUBLE,
           revenue_lift_ci_high DOUBLE, entries_in_window BIGINT, evaluated_at TIMESTAMPTZ)"""
    )
    con.execute(
        """INSERT INTO marts.activation_holdout_results VALUES
           ('abandoned_checkouts', 900, 117, 0.13, 12.5, 100, 8, 0.08, 7.25, 0.05, 0.0, 0.1, 5.25, -1.5, 12.0, 40,
            '2026-11-02'),
           ('seg_vip_customers', 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 25,
            '2026-11-02')"""
    )


def _make_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """The activation tables as the sync engine creates them, with tonight's and an earlier run's attempts."""
    ensure_ledger(con)
    members = [("klaviyo", "abandoned_checkouts", f"c{i}", "member") for i in range(7)]
    members += [
        ("klaviyo", "abandoned_checkouts", "c7", "removed"),
        ("klaviyo", "abandoned_checkouts", "c8", "rejected"),
    ]
    members += [("mailchimp", "abandoned_checkouts", f"c{i}", "member") for i in range(5)]
    members += [("mailchimp", "abandoned_checkouts", "c9", "skipped")]
    con.executemany(
        """INSERT INTO activation.sync_ledger (destination, audience, customer_id, state, updated_at)
           VALUES (?, ?, ?, ?, ?)""",
        [(*m, NOW) for m in members],
    )
    # (run, destination, action, result, how many)
    attempts = [
        ("run-earlier", "klaviyo", "add", "ok", 9),
        (RUN_ID, "klaviyo", "add", "ok", 3),
        (RUN_ID, "klaviyo", "update", "ok", 2),
        (RUN_ID, "klaviyo", "remove", "ok", 1),
        (RUN_ID, "klaviyo", "add", "rejected", 1),
        (RUN_ID, "mailchimp", "add", "ok", 4),
        (RUN_ID, "mailchimp", "add", "skipped", 1),
    ]
    con.executemany(
        """INSERT INTO activation.sync_log (run_id, logged_at, destination, audience, action, result)
           VALUES (?, ?, ?, 'abandoned_checkouts', ?, ?)""",
        [
            (run, NOW if run == RUN_ID else YESTERDAY, dest, action, result)
            for run, dest, action, result, n in attempts
            for _ in range(n)
        ],
    )


@pytest.fixture()
def warehouse(tmp_path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        _make_marts(con)
        _make_ledger(con)
    return path


class ReportPage(HTMLParser):
    """Sections, tables (rows of cell text, header row first), charts per section, and anything
    that would make the page fetch from the network."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.charts: dict[str, int] = {}
        self.notes: dict[str, list[str]] = {}
        self.fetches: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._note: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "link", "img", "iframe") or "src" in attrs:
            self.fetches.append(tag)
        if tag == "section":
            self.sections.append(attrs["id"])
            self.charts[attrs["id"]] = 0
            self.notes[attrs["id"]] = []
        elif tag == "svg":
            self.charts[self.sections[-1]] += 1
        elif tag == "table":
            self._table = attrs["id"]
            self.tables[self._table] = []
        elif tag == "tr":
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "p" and attrs.get("class") == "note":
            self._note = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "p" and self._note is not None:
            self.notes[self.sections[-1]].append("".join(self._note))
            self._note = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._note is not None:
            self._note.append(data)

    def rows(self, table: str) -> dict[str, list[str]]:
        """Body rows keyed by their first cell."""
        return {row[0]: row[1:] for row in self.tables[table][1:]}


def test_the_report_has_every_section_with_the_tables_numbers(warehouse):
    page = ReportPage(build_report(warehouse, RUN_ID, generated_at=NOW).html)
    assert page.sections == SECTION_IDS
    assert page.fetches == []
    assert all(page.charts[s] >= 1 for s in SECTION_IDS), page.charts

    with duckdb.connect(str(warehouse), read_only=True) as con:
        sums = con.execute(
            """SELECT step, sum(checkouts_reached), sum(checkouts_continued), sum(checkouts_dropped),
                      sum(cart_value_dropped)
               FROM marts.fct_checkout_funnel_steps GROUP BY step"""
        ).fetchall()
    funnel = page.rows("funnel-table")
    assert list(funnel) == ["contact", "shipping", "payment", "completed"]
    for step, reached, continued, dropped, value in sums:
        assert funnel[step][0] == f"{reached:,}"
        assert funnel[step][2:5] == [f"{continued:,}", f"{dropped:,}", f"{dropped / reached:.1%}"]
        assert funnel[step][5] == f"{value:,.2f}"
    assert funnel["contact"][:2] == ["1,000", "100.0%"]
    assert funnel["completed"][:2] == ["410", "41.0%"]

    causes = page.rows("exit-causes-table")
    assert list(causes) == ["extra_costs", "forced_account", "payment", "low_intent"]
    assert causes["extra_costs"] == ["shipping", "240", "50.0%", "33.3%", "720"]
    assert causes["payment"][3] == "–"  # a NULL rate is shown as missing, not as 0

    statuses = page.rows("identity-status-table")
    assert statuses == {
        "known": ["3", "60.0%"],
        "anonymous": ["2", "40.0%"],
        "all customers": ["5", "100.0%"],
    }
    stats = page.rows("identity-stats-table")
    assert stats["identifiers"] == ["19"]
    assert stats["identifiers per customer (mean)"] == ["3.80"]
    assert stats["identifiers per customer (median)"] == ["2.00"]
    assert stats["identifiers of the largest customer"] == ["12"]
    assert stats["customers with more than one identifier"] == ["3"]
    assert stats["customers matched across sources"] == ["1"]
    assert page.rows("identity-sizes-table") == {"1": ["2"], "2": ["1"], "3": ["1"], "10+": ["1"]}
    assert page.rows("identity-sources-table") == {
        "hubspot": ["1", "1"],
        "klaviyo": ["1", "1"],
        "mixpanel": ["16", "4"],
        "shopify": ["1", "1"],
    }

    audiences = page.tables["audiences-table"][1:]
    # Members from the ledger; changes from tonight's log only (the earlier run's 9 adds are not counted).
    assert audiences == [
        ["abandoned_checkouts", "klaviyo", "7", "3", "2", "1", "1", "0"],
        ["abandoned_checkouts", "mailchimp", "5", "4", "0", "0", "0", "1"],
    ]

    campaigns = page.rows("campaigns-table")
    assert list(campaigns) == ["Newsletter #7", "Autumn sale"]  # most recent first
    assert campaigns["Autumn sale"] == ["klaviyo", "2026-10-20", "1,200", "41.0%", "5.2%", "14", "1,834.50"]

    holdouts = page.rows("holdouts-table")
    assert holdouts["abandoned_checkouts"] == [
        "900", "13.0%", "100", "8.0%", "+5.0 pp", "+0.0 pp to +10.0 pp", "5.25", "-1.50 to 12.00", "40"
    ]  # fmt: skip
    assert holdouts["seg_vip_customers"][:2] == ["0", "–"]


def test_a_report_outside_a_pushing_run_shows_the_last_pushes(warehouse):
    page = ReportPage(build_report(warehouse, "run-without-pushes", generated_at=NOW).html)
    assert page.tables["audiences-table"][1] == ["abandoned_checkouts", "klaviyo", "7", "3", "2", "1", "1", "0"]
    assert any(RUN_ID in note for note in page.notes["audiences"])


def test_every_section_degrades_when_its_tables_are_missing_or_empty(tmp_path):
    bare = tmp_path / "bare.duckdb"
    duckdb.connect(str(bare)).close()
    page = ReportPage(build_report(bare, RUN_ID, generated_at=NOW).html)
    assert page.sections == SECTION_IDS
    assert page.tables == {}
    assert all(any("does not exist yet" in n for n in page.notes[s]) for s in SECTION_IDS), page.notes

    empty = tmp_path / "empty.duckdb"
    with duckdb.connect(str(empty)) as con:
        _make_marts(con)
        ensure_ledger(con)
        for table in (
            "fct_checkout_funnel_steps",
            "fct_checkout_exit_causes",
            "dim_customers",
            "customer_identifiers",
            "campaign_performance",
            "activation_holdout_results",
        ):
            con.execute(f"DELETE FROM marts.{table}")
    page = ReportPage(build_report(empty, RUN_ID, generated_at=NOW).html)
    assert page.sections == SECTION_IDS
    assert page.tables == {}
    assert all(any("no rows yet" in n for n in page.notes[s]) for s in SECTION_IDS), page.notes


def test_the_asset_writes_the_run_report_and_latest_and_links_them(warehouse):
    data = warehouse.parent
    result = dg.materialize([run_report], resources={"warehouse": WarehouseResource(data_dir=str(data))})
    assert result.success
    run_id = result.run_id
    report = data / "reports" / f"run_report_{run_id}.html"
    latest = data / "reports" / "latest.html"
    assert report.read_text() == latest.read_text()
    assert ReportPage(report.read_text()).sections == SECTION_IDS
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["path"].path == str(report)
    assert metadata["url"].url == report.as_uri()
    assert str(report) in metadata["report"].md_str and str(latest) in metadata["report"].md_str
    assert "file://" not in metadata["report"].md_str  # the UI blanks such links
    assert metadata["customers"].value == 5
    assert metadata["push_adds"].value == 7  # this run pushed nothing: the last pushing run, as on the page


def test_the_report_waits_for_the_marts_it_reads_and_every_push():
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey(["serving", "run_report"]))
    assert node.group_name == "serving"
    pushes = {k for k in graph.get_all_asset_keys() if k.path[0] == "activation"}
    assert len(pushes) >= 10
    marts = {
        dg.AssetKey(["marts", name])
        for name in (
            "fct_checkout_funnel_steps",
            "fct_checkout_exit_causes",
            "dim_customers",
            "customer_identifiers",
            "campaign_performance",
            "activation_holdout_results",
        )
    }
    assert node.parent_keys == marts | pushes
