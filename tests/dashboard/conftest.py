"""Headless Chromium (Debian's, driven by Playwright) against a real coordinator and real agents.

One browser for the session; each test gets a fresh context (its own cookies) and its own
coordinator (tests/e2e's ``Cluster``). Never ``playwright install``: the system's chromium runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.conftest import Cluster

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"


# Per module, not per session: Playwright's sync API runs an event loop in this thread while it is
# open, and every later test that starts one of its own (anyio's runner, anyio.run) would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    cluster.start_coordinator()
    try:
        yield cluster
    finally:
        cluster.stop()


def sign_in(page: Page, cluster: Cluster, key: str, path: str = "/dashboard") -> None:
    """Open ``path``, which shows the sign-in form, and sign in there with ``key``."""
    page.goto(cluster.url + path)
    page.fill("#api_key", key)
    page.click("#signin button[type=submit]")


def screenshot(page: Page, name: str) -> None:
    """Save docs/img/dashboard-``name``.png, only when TASKPOST_UPDATE_SCREENSHOTS=1."""
    if os.environ.get("TASKPOST_UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every browser test starts real processes: ``e2e`` and ``slow``."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
