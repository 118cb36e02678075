"""axe-core (through axe-playwright-python) on a page: no serious or critical violations."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

AXE = Axe()
BLOCKING = ("serious", "critical")


def assert_accessible(page: Page) -> None:
    """axe-core finds no serious or critical violation on the page as it is now."""
    violations = [v for v in AXE.run(page).response["violations"] if v.get("impact") in BLOCKING]
    report = "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in violations
    )
    assert not violations, f"axe on {page.url}: {report}"
