"""Settings that point Tessera's loaders and pushes at a running sandbox.

The same variables point them at the real vendors; see the README.
"""

from __future__ import annotations

import json
from pathlib import Path


def sandbox_env(base_url: str, world: Path) -> dict[str, str]:
    creds = json.loads((Path(world) / "world.json").read_text())["credentials"]
    base = base_url.rstrip("/")
    return {
        "SOURCES__HUBSPOT__BASE_URL": f"{base}/hubspot",
        "SOURCES__HUBSPOT__ACCESS_TOKEN": creds["hubspot"]["access_token"],
    }
