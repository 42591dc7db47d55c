"""The nightly's dbt step (orchestration/defs/transform/dbt.py) over two nights of the small world:
the run's "now" reaches the models, and the second night keeps dbt's parse of the project."""

from __future__ import annotations

import json
import re

from orchestration.defs.transform.dbt import dbt_target_path
from orchestration.resources import WarehouseResource


def _clock(night) -> str:
    return json.loads((night.world / "world.json").read_text())["clock"]


def test_the_second_night_reuses_the_first_nights_parse(small_world_nights):
    second = small_world_nights[1]
    log = (dbt_target_path(WarehouseResource(data_dir=str(second.data))) / "dbt.log").read_text()
    assert log.count("Running with dbt") == 2, "one dbt invocation a night, both logged beside the warehouse"
    # The first night parses the whole project (its copy of the parse belongs to another profile);
    # the second must find nothing changed, though its "now" differs.
    refusals = re.findall(r"Unable to do partial parsing because (.*)", log)
    assert len(refusals) == 1, refusals


def test_the_models_read_the_nights_now(small_world_nights):
    second = small_world_nights[1]
    compiled = dbt_target_path(WarehouseResource(data_dir=str(second.data))) / "compiled"
    sql = next(compiled.rglob("int_traits__open_carts.sql")).read_text()
    assert f"cast('{_clock(second)}' as timestamptz)" in sql
