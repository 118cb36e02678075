"""Headless Chromium (Debian's, driven by Playwright) against the live app and the Stripe sandbox.

The browser scenarios run on SQLite only: they test the pages and the browser round trip, while
the same use cases run on PostgreSQL in tests/payments and tests/web; doubling them would double
the slowest part of the suite for no new coverage.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TUTORBOOK_TEST_ARTIFACTS") or ROOT / "test-artifacts")
CHROMIUM = os.environ.get("TUTORBOOK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    """Keep only the SQLite run of the browser tests (see the module docstring)."""
    from tests.conftest import DATABASES

    if "sqlite" not in DATABASES:
        return
    dropped = [
        i
        for i in items
        if HERE in Path(str(i.fspath)).parents
        and getattr(i, "callspec", None)
        and i.callspec.params.get("database_url") != "sqlite"
    ]
    if dropped:
        items[:] = [i for i in items if i not in dropped]
        config.hook.pytest_deselected(items=dropped)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, keep a screenshot and the HTML of every open page for CI's log."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    contexts = getattr(item, "browser_contexts", [])
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[-150:]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for ci, context in enumerate(contexts):
        for pi, page in enumerate(context.pages):
            stem = ARTIFACTS / f"{name}-{ci}-{pi}"
            try:
                page.screenshot(path=f"{stem}.png", full_page=True)
                Path(f"{stem}.html").write_text(f"<!-- {page.url} -->\n" + page.content())
            except Exception as exc:  # a crashed page must not hide the test's own failure
                Path(f"{stem}.txt").write_text(f"could not capture {page.url}: {exc}")


# Module scope, not session: while Playwright's sync API is alive the main thread looks like it
# runs an asyncio loop, which breaks later tests that call asyncio.run().
@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is needed for the browser tests at {CHROMIUM} (scripts/ensure-chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_context(chromium, request):
    """Make browser contexts (separate cookie jars: a parent, a teacher); closed after the test."""
    made = request.node.browser_contexts = []

    def make(*, timezone_id: str = "UTC", width: int = 1100, height: int = 900, locale: str = "en-GB"):
        context = chromium.new_context(
            timezone_id=timezone_id, locale=locale, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(15_000)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.fixture
def parent_context(new_context):
    return new_context(timezone_id="America/New_York")


@pytest.fixture
def teacher_context(new_context):
    return new_context(timezone_id="Europe/Berlin")
