"""The quality gates: the expectation suites pass on a sound night's warehouse, and a broken table
fails its blocking check, which keeps that night's pushes from running and says why."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import duckdb
import pytest

from activation.sync.run import logical_now
from orchestration.definitions import defs
from orchestration.defs.activation.pushes import push_assets
from orchestration.defs.quality.expectations import MART_SUITES, SUITES, run_suite
from orchestration.defs.quality.gates import CHECK_NAME, gate_check
from orchestration.resources import WarehouseResource

DIM_CUSTOMERS = dg.AssetKey(["marts", "dim_customers"])


# The tests on a real night (marked slow) read the shared two nights: whichever test of the session
# comes first builds them (two demo runs) in its setup, which outlasts the default timeout.
@pytest.fixture(scope="module")
def night(small_world_nights):
    """The second shared night: its warehouse and the world's clock it ran at."""
    second = small_world_nights[1]
    clock = json.loads((second.world / "world.json").read_text())["clock"]
    return second, logical_now(clock)


def _copy(night, tmp_path) -> WarehouseResource:
    shutil.copy(night.warehouse, tmp_path / "warehouse.duckdb")
    return WarehouseResource(data_dir=str(tmp_path))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_suite_passes_on_a_sound_night(night):
    warehouse, now = night[0].warehouse, night[1]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        results = [run_suite(con, suite, now, previous_row_count=None) for suite in SUITES]
    failures = {r.suite.name: [o.describe() for o in r.failed] for r in results if not r.passed}
    assert not failures
    assert all(r.row_count > 0 for r in results if r.suite.name != "marts.abandoned_checkouts")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_suites_write_no_progress_bars_into_the_runs_log(night, capfd):
    warehouse, now = night[0].warehouse, night[1]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        run_suite(con, SUITES[0], now, previous_row_count=None)
    out, err = capfd.readouterr()
    assert "Calculating Metrics" not in out + err


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_table_that_shrank_sharply_since_the_last_passing_run_fails(night):
    warehouse, now = night[0].warehouse, night[1]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        result = run_suite(con, MART_SUITES[0], now, previous_row_count=10_000_000)
    assert [o.expectation.name for o in result.failed] == ["row count not down more than 20% on the last passing run"]
    assert result.failed[0].min_value == 8_000_000


def _gated_pushes() -> list[dg.AssetsDefinition]:
    """The real push assets: without destination settings they would fail if they ran."""
    return [a for a in push_assets if any(DIM_CUSTOMERS in deps for deps in a.asset_deps.values())]


@dg.asset(key=DIM_CUSTOMERS)
def dim_customers_as_built() -> None:
    """Stands in for the dbt build: the table is already in the copied warehouse."""


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_duplicate_customer_fails_the_blocking_gate_and_no_push_runs(night, tmp_path, monkeypatch):
    monkeypatch.setenv("TESSERA_NOW", night[1].isoformat())
    warehouse = _copy(night[0], tmp_path)
    gate = gate_check(next(s for s in SUITES if s.asset == "marts/dim_customers"))
    pushes = _gated_pushes()
    assert pushes, "the pushes no longer depend on marts/dim_customers"

    with dg.instance_for_test() as instance:
        # A sound night first: the gate passes and records the row count the next night compares with.
        sound = dg.materialize([dim_customers_as_built, gate], instance=instance, resources={"warehouse": warehouse})
        assert sound.get_asset_check_evaluations()[0].passed

        with duckdb.connect(str(warehouse.path)) as con:
            con.execute("INSERT INTO marts.dim_customers SELECT * FROM marts.dim_customers LIMIT 1")
        broken = dg.materialize(
            [dim_customers_as_built, gate, *pushes],
            instance=instance,
            resources={"warehouse": warehouse},
            raise_on_error=False,
        )

    (evaluation,) = broken.get_asset_check_evaluations()
    assert evaluation.check_name == CHECK_NAME and not evaluation.passed
    failed = evaluation.metadata["failed_expectations"].value
    assert [f["expectation"] for f in failed] == ["customer_id unique"]
    assert failed[0]["observed"] == 1 and failed[0]["max_value"] == 0
    assert "customer_id unique: observed 1 duplicate rows, expected <= 0" in evaluation.description
    assert evaluation.metadata["previous_row_count"].value == evaluation.metadata["row_count"].value - 1

    started = {e.step_key for e in broken.all_events if e.is_step_start}
    push_steps = {p.node_def.name for p in pushes}
    assert started and not started & push_steps, started
    assert not {m.asset_key for m in broken.get_asset_materialization_events() if m.asset_key != DIM_CUSTOMERS}


def test_every_gate_blocks_and_guards_the_pushes_directly():
    graph = defs.resolve_asset_graph()
    specs = {k: graph.get_check_spec(k) for k in graph.asset_check_keys}
    for suite in SUITES:
        spec = specs[dg.AssetCheckKey(dg.AssetKey(suite.asset.split("/")), CHECK_NAME)]
        assert spec.blocking, suite.asset
    # A blocking check holds back only direct dependents: every push depends on each checked mart
    # it reads, so a failed mart gate stops them all (raw gates stop the dbt build before them).
    pushes = [k for k in graph.get_all_asset_keys() if k.path[0] == "activation"]
    for key in pushes:
        parents = graph.get(key).parent_keys
        assert {DIM_CUSTOMERS, dg.AssetKey(["marts", "fct_checkouts"])} <= parents, key
    abandoned = dg.AssetKey(["marts", "abandoned_checkouts"])
    assert abandoned in graph.get(dg.AssetKey(["activation", "klaviyo", "abandoned_checkouts"])).parent_keys
    # Raw gates sit directly upstream of the dbt build, so a failed one stops it, and the pushes.
    staged_from = {p for k in graph.get_all_asset_keys() if k.path[0] == "staging" for p in graph.get(k).parent_keys}
    assert {dg.AssetKey(s.asset.split("/")) for s in SUITES if s.asset.startswith("raw_")} <= staged_from


def test_dbt_tests_with_severity_error_are_blocking_checks_on_the_marts_the_pushes_read():
    graph = defs.resolve_asset_graph()
    dbt_checks = [k for k in graph.asset_check_keys if k.asset_key == DIM_CUSTOMERS and k.name != CHECK_NAME]
    assert dbt_checks
    unique_key = [k for k in dbt_checks if k.name.startswith("unique_dim_customers_customer_id")]
    assert unique_key and graph.get_check_spec(unique_key[0]).blocking


@pytest.mark.parametrize(
    ("newest_hours_from_now", "failed", "observed"),
    [
        (-2, [], None),  # two hours old: sound
        (-48, ["newest updated_at within 24 h"], 48.0),  # no new record in two days: a stalled feed
        (3, ["updated_at not in the future"], 3.0),  # a clock or timezone gone wrong at the vendor
    ],
)
def test_a_stale_or_future_newest_record_fails_its_gate(newest_hours_from_now, failed, observed):
    from datetime import timedelta

    from orchestration.defs.quality.expectations.suite import TableSuite, fresh, not_in_future

    now = logical_now("2026-11-20T03:00:00+00:00")
    suite = TableSuite("raw_shop/orders", (fresh("updated_at", 24), not_in_future("updated_at")), "orders")
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA raw_shop; CREATE TABLE raw_shop.orders (updated_at TIMESTAMPTZ)")
        newest = now + timedelta(hours=newest_hours_from_now)
        con.execute("INSERT INTO raw_shop.orders VALUES (?), (?)", [newest - timedelta(days=3), newest])
        result = run_suite(con, suite, now)
    assert [o.expectation.name for o in result.failed] == failed
    if observed is not None:
        assert result.failed[0].observed == pytest.approx(observed)
    assert result.passed is (not failed)
