"""Fixtures of the browser suite: a real server and a headless Chromium per test module.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``make test``);
Playwright never downloads a browser here. Each test gets a fresh browser
context (cookies, storage, clock), so tests share nothing but the server,
and every test starts its own sessions.

Module scope, not package scope: Playwright's sync API keeps an event loop
marked as running in the main thread while it is started, and the async
tests of other packages need that thread free. (A directory without
``__init__.py`` is no package, so a "package" fixture would live on to the
end of the whole run.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_kit import CHROMIUM, LiveServer, running_server
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API, started for the module."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests run Debian's Chromium. "
            "Install it with `make system-deps` (or apt-get install chromium); "
            "`make test` does this for you.",
            pytrace=False,
        )
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium."""
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The tether app under uvicorn on a free port, demo on, manager on a fake clock."""
    with running_server(tmp_path_factory.mktemp("browser-server")) as live:
        yield live


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile for one test."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 720})
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def docs_img() -> Path:
    """Where screenshots for the README go."""
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    return DOCS_IMG
