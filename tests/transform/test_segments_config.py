"""Every segment is one SQL file plus its yml entry, and the entry says how it is activated:
where it goes, under which list or tag, which of its columns are pushed, and that consent is
enforced (it selects from email_audience() and carries the only_emailable_customers test)."""

from __future__ import annotations

import re

import pytest
import yaml

from orchestration.paths import PROJECT_ROOT

SEGMENTS = PROJECT_ROOT / "dbt_project" / "models" / "marts" / "segments"
ENTRIES = {m["name"]: m for m in yaml.safe_load((SEGMENTS / "_segments__models.yml").read_text())["models"]}
SQL_FILES = sorted(p.stem for p in SEGMENTS.glob("*.sql"))


def test_every_segment_file_has_an_entry_and_every_entry_a_file():
    assert SQL_FILES, "segments exist"
    assert all(name.startswith("seg_") for name in SQL_FILES)
    assert set(SQL_FILES) == set(ENTRIES)


@pytest.mark.parametrize("name", SQL_FILES)
def test_a_segment_says_how_it_is_activated(name):
    entry = ENTRIES[name]
    activation = entry["config"]["meta"]["activation"]
    destinations = activation["destinations"]
    assert destinations and set(destinations) <= {"klaviyo", "mailchimp"}
    if "klaviyo" in destinations:
        assert activation["klaviyo_list"].strip()
    if "mailchimp" in destinations:
        assert re.fullmatch(r"[a-z0-9_]+", activation["mailchimp_tag"])
    columns = [c["name"] for c in entry["columns"]]
    assert columns[:2] == ["customer_id", "email"]
    assert activation["properties"] and set(activation["properties"]) <= set(columns) - {"customer_id", "email"}


@pytest.mark.parametrize("name", SQL_FILES)
def test_a_segment_only_reaches_consented_customers(name):
    sql = (SEGMENTS / f"{name}.sql").read_text()
    assert "{{ email_audience() }}" in sql
    assert "only_emailable_customers" in ENTRIES[name]["tests"]
    for column in ENTRIES[name]["columns"]:
        assert re.search(rf"\b{column['name']}\b", sql), (name, column["name"])


def test_segment_lists_and_tags_are_distinct():
    activations = [ENTRIES[name]["config"]["meta"]["activation"] for name in SQL_FILES]
    lists = [a.get("klaviyo_list") for a in activations if a.get("klaviyo_list")]
    tags = [a.get("mailchimp_tag") for a in activations if a.get("mailchimp_tag")]
    assert len(lists) == len(set(lists)) and len(tags) == len(set(tags))
