"""The pages' Content-Security-Policy leaves them working in a real browser: the register page's
time-zone script (a static file) runs, and nothing on the pages is blocked."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.site import Site

pytestmark = pytest.mark.browser


def test_the_register_page_fills_the_browsers_zone_under_the_csp(api, new_context):
    site = Site(new_context(timezone_id="Asia/Tokyo"), api.state.base_url)
    blocked = []
    site.page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    for path in ("/", "/login", "/register"):
        response = site.page.goto(site.base + path)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    expect(site.page.get_by_label("Time zone")).to_have_value("Asia/Tokyo")
    assert blocked == []
