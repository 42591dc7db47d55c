"""A headless Chromium from the OS's packages, driven by Playwright, for the UI tests.

Playwright's own browser download is not used (it is not reachable from every machine):
`make browser` installs Debian's `chromium`, or `TESSERA_BROWSER` points at another Chromium or
Chrome binary. Without one the test fails, saying how to get one, rather than skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestration.paths import PROJECT_ROOT

BROWSER_SETTING = "TESSERA_BROWSER"
OS_CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking switches Chromium keeps dialling Google's update and
# sync services; on a closed network those attempts fail and slow every page down.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Git ignores data/: screenshots of the last UI test run are kept there for a look afterwards.
SCREENSHOTS = PROJECT_ROOT / "data" / "screenshots"


def chromium_executable() -> Path:
    """The Chromium to drive: `TESSERA_BROWSER`, else the OS package's; fails the test if neither is there."""
    configured = os.environ.get(BROWSER_SETTING)
    path = Path(configured) if configured else OS_CHROMIUM
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"No Chromium at {path} for the browser test. Run `make browser` (as root it installs Debian's "
            f"`chromium` with apt-get; `make test` does this), or `apt-get install chromium`, "
            f"or set {BROWSER_SETTING} to a Chromium or Chrome executable.",
            pytrace=False,
        )
    return path


@contextmanager
def headless_chromium(profile: Path, executable: Path, *, timeout_ms: int) -> Iterator[object]:
    """A Playwright browser context on a fresh Chromium profile in `profile` (nothing remembered
    from an earlier run); closed, with its Chromium processes, when the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(executable),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1600, "height": 1000},
        )
        context.set_default_timeout(timeout_ms)
        try:
            yield context
        finally:
            context.close()


class UiSteps:
    """Named steps of a UI test: a screenshot after each, and on failure what the page showed."""

    def __init__(self, page, folder: Path, context: Callable[[], str] = lambda: "") -> None:
        self.page = page
        self.folder = folder
        # Only this run's screenshots: an old failure's picture must not pass for a new one.
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.context = context
        self.count = 0

    def screenshot(self, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}_{re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Run the block; then keep a screenshot, or fail with the page's text and the screenshot's path."""
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            try:
                shot = str(self.screenshot(f"failed {name}"))
                text = self.page.inner_text("body", timeout=5000)
            except Exception as screenshot_error:  # the page itself may be what broke
                shot, text = f"(none: {screenshot_error})", ""
            excerpt = re.sub(r"\n\s*\n+", "\n", text).strip()[:2500]
            pytest.fail(
                f"UI step '{name}' failed: {exc}\n"
                f"page {self.page.url}\nscreenshot {shot}\n"
                f"--- what the page showed ---\n{excerpt}\n{self.context()}",
                pytrace=False,
            )
        self.screenshot(name)
        print(f"UI step '{name}': {time.perf_counter() - started:.1f}s")
