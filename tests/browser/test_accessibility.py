"""Every page of the product, for each kind of visitor, with data on it (paid, completed and
cancelled sessions, earnings, a refund, a reschedule), at desktop width and on a 375 px phone:
axe-core finds no serious or critical violation, and nothing is wider than the screen (a wide
table scrolls inside its own box, which the keyboard can reach). The console's pages are also
checked without JavaScript in tests/browser/test_console.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests import factories as f
from tests.browser.axe import assert_accessible
from tests.browser.site import Site
from tests.jobs.helpers import confirmed
from tests.support.servers import http_client
from tests.web.helpers import make_admin, move_into_past
from tutorbook.accounts import resets
from tutorbook.clock import utc_now

pytestmark = pytest.mark.browser
WINDOWS = [{"weekday": d, "start": "08:00", "end": "18:00"} for d in range(7)]
WIDTHS = {"desktop": (1280, 900), "phone-375": (375, 740)}

ANYONE = [
    "/",
    "/login",
    "/register",
    "/forgot-password",
    "/reset-password?token=not-a-token",
    "/time-zone",
    "/no-such-page",
]
TEACHER = [
    "/schedule",
    "/teacher/profile",
    "/teacher/hours",
    "/teacher/time-off",
    "/teacher/calendars",
    "/teacher/policy",
    "/teacher/payouts",
    "/teacher/earnings",
    "/settings",
]
PARENT = ["/my-bookings", "/children", "/dev/mail", "/settings"]
ADMIN = ["/admin", "/admin/bookings", "/admin/reconcile", "/admin/users", "/admin/reports"]


def assert_fits_and_accessible(site: Site, path: str) -> None:
    page = site.goto(path)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    assert_accessible(page)


@pytest.fixture
def world(api):
    """A teacher with an upcoming paid session, a completed one and a cancelled (refunded) one
    with a reason; the parent; an admin."""
    with http_client(base_url=api.state.base_url, timeout=60) as c:
        teacher = f.teacher(c, rate=4500, windows=WINDOWS)
        parent = f.parent(c)
        upcoming = confirmed(c, teacher=teacher, parent=parent, days=3, hour=10)["b"]
        done = confirmed(c, teacher=teacher, parent=parent, days=4, hour=10)["b"]
        gone = confirmed(c, teacher=teacher, parent=parent, days=5, hour=11)["b"]
        move_into_past(api.state.db, done["id"], hours=30)
        assert teacher["client"].post(f"/api/Sessions/{done['id']}/complete").status_code == 200
        assert teacher["client"].post(f"/api/Sessions/{gone['id']}/cancel").status_code == 200
        moved = f.slot(days=6, hour=10)
        assert teacher["client"].post(f"/api/Sessions/{upcoming['id']}/reschedule", json={"startsAt": moved}).is_success
    return {
        "teacher": teacher,
        "parent": parent,
        "admin": make_admin(api),
        "upcoming": upcoming["id"],
        "done": done["id"],
    }


def test_every_page_meets_the_accessibility_bar_at_desktop_and_phone_width(api, world, new_context):
    for w, h in WIDTHS.values():
        sweep(api, world, new_context, w, h)


def sweep(api, world, new_context, w: int, h: int) -> None:
    b = world["upcoming"]
    with api.state.db.session_scope() as s:  # a reset link that works: the form (not-a-token: "no longer works")
        email = world["teacher"]["email"]
        _, token = resets.start(s, email=email, ttl=timedelta(minutes=30), every=timedelta(0), now=utc_now())
    visitor = Site(new_context(width=w, height=h), api.state.base_url)
    for path in [*ANYONE, f"/teachers/{world['teacher']['user']['id']}", f"/reset-password?token={token}"]:
        assert_fits_and_accessible(visitor, path)

    teacher = Site(new_context(width=w, height=h, timezone_id="Europe/Berlin"), api.state.base_url)
    teacher.log_in(world["teacher"]["email"])
    for path in [*TEACHER, f"/bookings/{b}/cancel", f"/bookings/{b}/reschedule?week=1"]:
        assert_fits_and_accessible(teacher, path)

    parent = Site(new_context(width=w, height=h, timezone_id="America/New_York", locale="en-US"), api.state.base_url)
    parent.log_in(world["parent"]["email"])
    for path in [*PARENT, f"/bookings/{b}/cancel", f"/bookings/{b}/reschedule?week=1"]:
        assert_fits_and_accessible(parent, path)

    admin = Site(new_context(width=w, height=h, timezone_id="America/Chicago", locale="en-US"), api.state.base_url)
    admin.log_in(world["admin"]["email"])
    q = world["parent"]["email"].split("@")[0]
    for path in [*ADMIN, f"/admin/bookings?q={q}", f"/admin/bookings/{b}", f"/bookings/{b}/reschedule?week=1"]:
        assert_fits_and_accessible(admin, path)


def test_on_a_375_px_phone_the_earnings_show_you_keep_without_scrolling_sideways(api, world, new_context):
    phone = Site(new_context(width=375, height=740), api.state.base_url)
    phone.log_in(world["teacher"]["email"])
    page = phone.goto("/teacher/earnings")
    rows = page.locator("#sessions tbody tr")
    expect(rows).to_have_count(3)
    for i in range(3):
        keep = rows.nth(i).locator('td[data-label="You keep"]')
        expect(keep).to_be_visible()
        box = keep.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375, box
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # Nothing to scroll sideways inside the tables either.
    assert page.evaluate(
        "[...document.querySelectorAll('.table-wrap')].every(e => e.scrollWidth <= e.clientWidth + 1)"
    )
    expect(page.locator("#fee")).to_contain_text("%")
    assert_accessible(page)
