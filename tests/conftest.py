"""Shared fixtures: `browser`, one headless Chromium for every browser test of the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")  # the Debian package (scripts/system-deps.sh); no download
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # git-ignored screenshots


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """A Playwright Chromium browser (headless); open pages with `browser.new_page()`."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/system-deps.sh` (make test does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """test-artifacts/ (screenshots and the like), created on demand."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
