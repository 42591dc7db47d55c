"""`python -m activation.privacy erase --warehouse X`: the files cleaned are those beside X.

Two data folders of the same layout (`warehouse.duckdb`, `dlt/`, `analysts.duckdb`): the default
one (TESSERA_DATA_DIR) and another that `--warehouse` names. A hand-built warehouse of two people
stands in for a loaded one, so this runs in seconds.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import duckdb
import pytest

from activation.privacy.__main__ import main as privacy_cli
from orchestration.defs.serving.analysts_copy import publish

ANA, BEN = "ana@example.com", "ben@example.com"


def _data_folder(root: Path) -> Path:
    """A data folder holding a warehouse with Ana and Ben, a completed load package and an analysts' copy."""
    root.mkdir()
    warehouse = root / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA raw_shopify; CREATE SCHEMA marts")
        con.execute("CREATE TABLE raw_shopify.customers (id BIGINT, email VARCHAR, _dlt_id VARCHAR)")
        con.execute("INSERT INTO raw_shopify.customers VALUES (101, ?, 'c1'), (102, ?, 'c2')", [ANA, BEN])
        con.execute(
            "CREATE TABLE marts.customer_identifiers "
            "(customer_id VARCHAR, source VARCHAR, id_type VARCHAR, id_value VARCHAR)"
        )
        con.execute(
            "INSERT INTO marts.customer_identifiers VALUES ('cus_1', 'shopify', 'email', ?), "
            "('cus_1', 'shopify', 'customer_id', '101'), ('cus_2', 'shopify', 'email', ?), "
            "('cus_2', 'shopify', 'customer_id', '102')",
            [ANA, BEN],
        )
    package = root / "dlt" / "shopify" / "load" / "loaded" / "1700000000.1"
    package.mkdir(parents=True)
    (package / "customers.jsonl").write_text(f'{{"id": 101, "email": "{ANA}"}}\n')
    publish(warehouse, root / "analysts.duckdb")
    return root


def _emails_in_copy(folder: Path) -> list[str]:
    with duckdb.connect(str(folder / "analysts.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT id_value FROM marts.customer_identifiers WHERE id_type = 'email' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def test_erase_with_warehouse_cleans_that_warehouses_folder_not_the_default_one(tmp_path, monkeypatch) -> None:
    default, other = _data_folder(tmp_path / "default"), _data_folder(tmp_path / "other")
    monkeypatch.setenv("TESSERA_DATA_DIR", str(default))
    for name in list(os.environ):
        if name.startswith(("ACTIVATION__", "SOURCES__")):
            monkeypatch.delenv(name)  # no email platform to ask

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert privacy_cli(["erase", "--warehouse", str(other / "warehouse.duckdb"), "--email", ANA]) == 0

    # The named warehouse's folder: its package deleted, its copy republished without Ana.
    assert not list((other / "dlt").glob("*/load/loaded/*"))
    assert _emails_in_copy(other) == [BEN]
    assert "load packages deleted: 1" in out.getvalue()
    assert "analysts' copy republished: True" in out.getvalue()
    # The default folder is another warehouse's: left exactly as it was.
    assert [p.name for p in (default / "dlt").glob("*/load/loaded/*")] == ["1700000000.1"]
    assert _emails_in_copy(default) == [ANA, BEN]
    with duckdb.connect(str(default / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw_shopify.customers").fetchall() == [(2,)]


def test_erasing_at_mailchimp_needs_only_the_key_not_the_audience_to_tag_on(tmp_path, monkeypatch):
    from activation.privacy.destinations import configured_destinations
    from activation.settings import DestinationNotConfigured, destinations_from_env

    for name in list(os.environ):
        if name.startswith(("ACTIVATION__MAILCHIMP__", "SOURCES__MAILCHIMP__")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SOURCES__MAILCHIMP__API_KEY", "0123456789abcdef0123456789abcdef-us21")
    monkeypatch.setenv("SOURCES__MAILCHIMP__BASE_URL", "http://mailchimp.test/3.0")
    with pytest.raises(DestinationNotConfigured, match="ACTIVATION__MAILCHIMP__LIST_ID"):
        destinations_from_env(["mailchimp"])
    (eraser,) = configured_destinations(["mailchimp"])
    assert eraser.name == "mailchimp" and eraser.list_id is None
