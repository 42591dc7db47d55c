"""The over-merge guards on the identity map pass on a sound map and fail on an over-merge."""

from __future__ import annotations

import duckdb
import pytest

from orchestration.defs.quality.identity import (
    IdentityGuardrails,
    customers_within_size_limit,
    no_sudden_identity_jump,
)
from orchestration.resources import WarehouseResource


def _warehouse(tmp_path, rows: list[tuple[str, str, str, str | None]]) -> WarehouseResource:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("CREATE SCHEMA intermediate")
        con.execute(
            "CREATE TABLE intermediate.int_identity__resolved "
            "(node VARCHAR, kind VARCHAR, customer_id VARCHAR, previous_customer_id VARCHAR)"
        )
        con.executemany("INSERT INTO intermediate.int_identity__resolved VALUES (?, ?, ?, ?)", rows)
    return WarehouseResource(data_dir=str(tmp_path))


def _person(customer: str, emails: int, devices: int = 0, previous: str | None = None) -> list[tuple]:
    rows = [(f"email:{customer}{i}@x.com", "email", customer, previous) for i in range(emails)]
    rows += [(f"mixpanel_device:{customer}{i}", "mixpanel_device", customer, previous) for i in range(devices)]
    return rows


@pytest.fixture
def guardrails() -> IdentityGuardrails:
    return IdentityGuardrails(max_identifiers_per_customer=5, max_changed_share=0.1)


def test_a_customer_with_more_identifiers_than_a_person_fails_the_size_check(tmp_path, guardrails):
    # Devices do not count: the second customer has many, and passes.
    sound = _warehouse(tmp_path, _person("a", 3) + _person("b", 2, devices=40))
    assert customers_within_size_limit(warehouse=sound, identity_guardrails=guardrails).passed

    (tmp_path / "bad").mkdir()
    glued = _warehouse(tmp_path / "bad", _person("a", 3) + _person("hub", 12))
    result = customers_within_size_limit(warehouse=glued, identity_guardrails=guardrails)
    assert not result.passed
    assert result.metadata["largest_customer_identifiers"].value == 12
    assert "hub" in result.metadata["largest_customers"].value


def test_many_known_identifiers_changing_customer_at_once_fails_the_jump_check(tmp_path, guardrails):
    steady = _warehouse(tmp_path, _person("a", 10, previous="a") + _person("b", 10, previous="b"))
    assert no_sudden_identity_jump(warehouse=steady, identity_guardrails=guardrails).passed

    (tmp_path / "jump").mkdir()
    # Everything b had now belongs to a: half of the known identifiers changed customer.
    merged_b = [(f"email:b{i}@x.com", "email", "a", "b") for i in range(10)]
    jumped = _warehouse(tmp_path / "jump", _person("a", 10, previous="a") + merged_b)
    result = no_sudden_identity_jump(warehouse=jumped, identity_guardrails=guardrails)
    assert not result.passed
    assert result.metadata["changed_identifiers"].value == 10
