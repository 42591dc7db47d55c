"""Where Tessera's files live. Resolved when called, never at import."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


def data_dir() -> Path:
    """`data/` under the project, or `TESSERA_DATA_DIR`."""
    return Path(os.environ.get("TESSERA_DATA_DIR") or PROJECT_ROOT / "data").resolve()
