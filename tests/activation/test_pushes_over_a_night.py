"""The pushes over two nights of the small sandbox world: the second night sends only what changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import duckdb
import pytest

from activation.sync.holdouts import is_held_out
from sandbox.env import sandbox_env
from tests.activation.vendor_reads import klaviyo_list_members
from tests.conftest import running_sandbox

# Whichever test comes first builds the shared two nights (two demo runs) in its setup.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

AUDIENCE = "abandoned_checkouts"


def test_after_a_night_only_the_changes_are_sent(small_world_nights):
    first, second = small_world_nights
    before = first.pushed[("klaviyo", AUDIENCE)]
    with duckdb.connect(str(second.warehouse), read_only=True) as con:
        rows = con.execute(f"SELECT customer_id, lower(email) FROM marts.{AUDIENCE}").fetchall()
        last_run = con.execute(
            "SELECT run_id FROM activation.sync_log WHERE destination = 'klaviyo' ORDER BY logged_at DESC LIMIT 1"
        ).fetchall()[0][0]
        sent = con.execute(
            "SELECT action, lower(email) FROM activation.sync_log "
            "WHERE run_id = ? AND audience = ? AND destination = 'klaviyo'",
            [last_run, AUDIENCE],
        ).fetchall()
    after = {email for customer_id, email in rows if not is_held_out(AUDIENCE, customer_id, 0.1)}
    assert before and before != after, "a night should change the abandoned-cart audience"
    adds = {e for action, e in sent if action == "add"}
    removes = {e for action, e in sent if action == "remove"}
    assert adds == after - before
    assert removes == before - after
    assert {e for action, e in sent if action == "update"} <= after & before
    with running_sandbox(second.world) as sandbox:
        env = sandbox_env(sandbox.url, second.world)
        in_klaviyo = klaviyo_list_members(
            env["SOURCES__KLAVIYO__BASE_URL"], env["SOURCES__KLAVIYO__API_KEY"], "Abandoned checkout (24h)"
        )
    assert set(in_klaviyo) == after


def test_a_dry_run_after_the_night_has_nothing_left_to_send_but_retries(small_world_nights, tmp_path):
    """`python -m activation sync --dry-run` over the second night's warehouse: every audience
    was delivered; members Mailchimp skipped wait until its own record shows them subscribed."""
    second = small_world_nights[1]
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(second.warehouse, warehouse)
    manifest = second.data / "dbt_target" / "manifest.json"
    with running_sandbox(second.world) as sandbox:
        env = {**os.environ, **sandbox_env(sandbox.url, second.world)}
        out = subprocess.run(
            [sys.executable, "-m", "activation", "--warehouse", str(warehouse), "--manifest", str(manifest)]
            + ["sync", "--dry-run"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    header, *lines = [
        line.split() for line in out.splitlines() if line.startswith(("destination", "klaviyo ", "mailchimp "))
    ]
    assert header[:12] == [
        "destination",
        "audience",
        "rows",
        "held",
        "supp",
        "add",
        "retry",
        "wait",
        "sent",
        "upd",
        "rem",
        "same",
    ]
    rows = {(line[0], line[1]): dict(zip(header[2:], map(int, line[2:]), strict=True)) for line in lines}
    assert ("klaviyo", AUDIENCE) in rows and ("mailchimp", AUDIENCE) in rows
    for key, counts in rows.items():
        assert counts["add"] == counts["retry"] and counts["upd"] == counts["rem"] == 0, key
    assert any(counts["wait"] for (destination, _), counts in rows.items() if destination == "mailchimp")
