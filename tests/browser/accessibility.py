"""axe-core in the browser tests: injected into a page, run for WCAG 2 A/AA, its serious and
critical violations returned. axe-core comes from npm (tests/browser/axe/package-lock.json,
installed by `npm ci` into tests/browser/axe/node_modules the first time)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page

HERE = Path(__file__).parent / "axe"
NODE_MODULES = HERE / "node_modules"
AXE = NODE_MODULES / "axe-core" / "axe.min.js"


def axe_script() -> Path:
    """axe.min.js as the lock file says, from `npm ci` only when missing or out of date."""
    lock_hash = hashlib.sha1((HERE / "package-lock.json").read_bytes()).hexdigest()[:12]
    stamp = NODE_MODULES / f".installed-{lock_hash}"
    if stamp.exists() and AXE.exists():
        return AXE
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is required for the accessibility check and is not on PATH")
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(f"npm ci failed (is the npm registry reachable?):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    for old in NODE_MODULES.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return AXE


def serious_violations(page: Page) -> list[str]:
    """The page's serious and critical axe-core violations (WCAG 2 A and AA), as readable lines."""
    # Evaluated, not added as a <script>: the pages' Content-Security-Policy allows no inline script.
    page.evaluate(axe_script().read_text() + "\n;undefined")
    result = page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
