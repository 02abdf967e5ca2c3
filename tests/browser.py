"""Headless Chromium for the tests that look at a page the way a person does (tests/services/test_ui.py, the run
report): Debian's Chromium (scripts/browser.sh, `make test` installs it) driven by Playwright, which cannot download
its own browser here. Screenshots go to var/ui/ of the checkout (the README shows two of them)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO_ROOT / "var" / "ui"
CHROMIUM = Path(os.environ.get("TRIBUTARY_CHROMIUM", "/usr/bin/chromium"))


@contextmanager
def chromium() -> Iterator:
    """A headless Chromium, closed (with its processes) when the block ends, also on failure."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.is_file(), f"no Chromium at {CHROMIUM}: run scripts/browser.sh (make test does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page, name: str, **kwargs) -> Path:
    """Save what ``page`` shows as var/ui/<name>.png; its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), **kwargs)
    return path
