"""The nightly schedule's time and timezone come from settings, validated when the definitions load."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orchestration.defs.schedules import (
    CRON_SETTING,
    TIMEZONE_SETTING,
    NightlySettings,
    build_nightly_schedule,
    nightly_settings,
)
from orchestration.paths import PROJECT_ROOT


def test_defaults_are_three_in_the_morning_utc():
    assert nightly_settings({}) == NightlySettings(cron="0 3 * * *", timezone="UTC")


def test_settings_choose_the_time_and_the_timezone():
    settings = nightly_settings({CRON_SETTING: "30 1 * * 1-5", TIMEZONE_SETTING: "Europe/Berlin"})
    schedule = build_nightly_schedule(settings)
    assert schedule.cron_schedule == "30 1 * * 1-5"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.job_name == "nightly"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({CRON_SETTING: "every night"}, CRON_SETTING),
        ({CRON_SETTING: "0 25 * * *"}, CRON_SETTING),
        ({TIMEZONE_SETTING: "Mars/Olympus_Mons"}, TIMEZONE_SETTING),
    ],
)
def test_a_wrong_setting_says_which_one_to_fix(env, named):
    with pytest.raises(ValueError, match=named):
        nightly_settings(env)


def test_the_code_location_reads_the_settings_when_it_loads():
    # A fresh interpreter, as the Dagster code server is: the settings in its environment
    # end up on the loaded schedule.
    env = {**os.environ, CRON_SETTING: "15 4 * * *", TIMEZONE_SETTING: "America/New_York"}
    script = (
        "from orchestration.definitions import defs;"
        "s = defs.resolve_schedule_def('nightly_schedule');"
        "print(s.cron_schedule, s.execution_timezone)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "15 4 * * * America/New_York"
