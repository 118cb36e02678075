"""Every page of the product, for each kind of visitor, at phone width: axe-core finds no serious
or critical violation, and nothing is wider than the screen. (The console's pages have their own
test, tests/browser/test_console.py, as do the pages of the scenarios.)"""

from __future__ import annotations

import pytest

from tests import factories as f
from tests.browser.axe import assert_accessible
from tests.browser.site import Site
from tests.support.servers import http_client

pytestmark = pytest.mark.browser
WINDOWS = [{"weekday": d, "start": "10:00", "end": "12:00"} for d in range(7)]

ANYONE = ["/", "/login", "/register", "/forgot-password", "/reset-password?token=not-a-token", "/time-zone"]
TEACHER = [
    "/schedule",
    "/teacher/profile",
    "/teacher/hours",
    "/teacher/time-off",
    "/teacher/calendars",
    "/teacher/policy",
    "/teacher/payouts",
    "/teacher/earnings",
]
PARENT = ["/my-bookings", "/children", "/dev/mail"]


def assert_fits_and_accessible(site: Site, path: str) -> None:
    page = site.goto(path)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    assert_accessible(page)


def test_every_page_meets_the_accessibility_bar_on_a_phone(api, new_context):
    with http_client(base_url=api.state.base_url, timeout=30) as c:
        teacher = f.teacher(c, rate=4500, windows=WINDOWS, time_zone="Europe/Berlin")
    visitor = Site(new_context(width=390, height=844), api.state.base_url)
    for path in [*ANYONE, f"/teachers/{teacher['user']['id']}"]:
        assert_fits_and_accessible(visitor, path)

    teacher_site = Site(new_context(width=390, height=844), api.state.base_url)
    teacher_site.log_in(teacher["email"])
    for path in TEACHER:
        assert_fits_and_accessible(teacher_site, path)

    parent = Site(new_context(width=390, height=844), api.state.base_url)
    parent.register_parent()
    parent.add_child("Robin")
    for path in PARENT:
        assert_fits_and_accessible(parent, path)
