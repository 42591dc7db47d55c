"""The pushes read their settings as the loaders do: the environment, then the `.dlt` files.

Each case runs in a fresh process whose working folder holds its own `.dlt` files, because
dlt reads them from the working folder once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from orchestration.paths import PROJECT_ROOT

SHOW = """
import json
from activation.settings import DestinationNotConfigured, klaviyo_from_env, mailchimp_from_env
found = {}
for name, build in (("klaviyo", klaviyo_from_env), ("mailchimp", mailchimp_from_env)):
    try:
        d = build()
    except DestinationNotConfigured as exc:
        found[name] = {"error": str(exc)}
        continue
    if name == "klaviyo":
        found[name] = {"base_url": d.client.base_url, "key": d.client._api_key}
    else:
        found[name] = {"root": d._api.root, "list_id": d.list_id}
print(json.dumps(found))
"""


def _settings(folder: Path, config: str = "", secrets: str = "", **env: str) -> dict:
    (folder / ".dlt").mkdir(parents=True, exist_ok=True)
    (folder / ".dlt" / "config.toml").write_text(config)
    (folder / ".dlt" / "secrets.toml").write_text(secrets)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACTIVATION__", "SOURCES__"))}
    result = subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=folder,
        env={**clean, "PYTHONPATH": str(PROJECT_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_keys_kept_in_the_secrets_file_serve_the_pushes(tmp_path):
    found = _settings(
        tmp_path,
        config='[sources.klaviyo]\nbase_url = "http://klaviyo.test"\n'
        '[sources.mailchimp]\nbase_url = "http://mailchimp.test"\n',
        secrets='[sources.klaviyo]\napi_key = "pk_loaders"\n'
        '[sources.mailchimp]\napi_key = "key-us1"\n'
        '[activation.mailchimp]\nlist_id = "list1"\n',
    )
    assert found["klaviyo"] == {"base_url": "http://klaviyo.test", "key": "pk_loaders"}
    assert found["mailchimp"] == {"root": "http://mailchimp.test/3.0", "list_id": "list1"}


def test_the_pushes_own_settings_come_before_the_loaders(tmp_path):
    found = _settings(
        tmp_path,
        secrets='[sources.klaviyo]\napi_key = "pk_loaders"\n[activation.klaviyo]\napi_key = "pk_file"\n',
        ACTIVATION__KLAVIYO__API_KEY="pk_environment",
    )
    # The environment over the files, the pushes' own section over the loaders'.
    assert found["klaviyo"] == {"base_url": "https://a.klaviyo.com", "key": "pk_environment"}


def test_a_key_in_the_tracked_config_file_is_not_used(tmp_path):
    found = _settings(
        tmp_path,
        config='[sources.klaviyo]\napi_key = "pk_committed"\n'
        '[activation.mailchimp]\nlist_id = "list1"\napi_key = "key-us1"\n',
    )
    assert "ACTIVATION__KLAVIYO__API_KEY" in found["klaviyo"]["error"]
    assert "ACTIVATION__MAILCHIMP__API_KEY" in found["mailchimp"]["error"]


def test_a_key_ending_in_a_line_break_is_used_without_it(tmp_path):
    # A CRLF env file, or a Kubernetes secret created from a file, leaves "\r" or "\r\n" behind.
    found = _settings(
        tmp_path,
        secrets='[sources.klaviyo]\napi_key = "pk_fromfile0123\\r\\n"\n[activation.mailchimp]\nlist_id = " list1\\n"\n',
        ACTIVATION__KLAVIYO__API_KEY="  pk_environment0123\r\n",
        ACTIVATION__MAILCHIMP__API_KEY="0123456789abcdef0123456789abcdef-us21\r",
    )
    assert found["klaviyo"] == {"base_url": "https://a.klaviyo.com", "key": "pk_environment0123"}
    assert found["mailchimp"] == {"root": "https://us21.api.mailchimp.com/3.0", "list_id": "list1"}
    found = _settings(tmp_path, secrets='[sources.klaviyo]\napi_key = "pk_fromfile0123\\r\\n"\n')
    assert found["klaviyo"]["key"] == "pk_fromfile0123"


def test_a_key_with_a_control_character_inside_is_refused_naming_the_setting_not_the_key(tmp_path):
    found = _settings(
        tmp_path,
        secrets='[sources.klaviyo]\napi_key = "pk_0123\\u0007abcdefSECRET"\n',
        ACTIVATION__MAILCHIMP__API_KEY="0123456789abcdef\r\n0123456789abcdef-us21",
        ACTIVATION__MAILCHIMP__LIST_ID="list1",
    )
    klaviyo, mailchimp = found["klaviyo"].get("error", ""), found["mailchimp"].get("error", "")
    assert "SOURCES__KLAVIYO__API_KEY" in klaviyo and "control character" in klaviyo, found
    assert "ACTIVATION__MAILCHIMP__API_KEY" in mailchimp and "control character" in mailchimp, found
    for secret in ("pk_0123", "abcdefSECRET", "0123456789abcdef"):
        assert secret not in klaviyo + mailchimp
