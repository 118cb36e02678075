"""Issue #30 in headless Chromium: a teacher connects a calendar on /teacher/calendars, sees it
read, asks why a time is not offered, removes it; on a desktop and at 375 px, axe-clean."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests import factories as f
from tests.browser.axe import assert_accessible
from tests.browser.site import Site
from tests.calendars import calendar_files as cal
from tests.calendars.server import CalendarServer
from tests.jobs import helpers as h
from tests.support.servers import http_client

pytestmark = pytest.mark.browser


@pytest.fixture
def calendars(api, monkeypatch):
    monkeypatch.setattr(api.state.settings, "calendar_allow_http", True)
    monkeypatch.setattr(api.state.settings, "calendar_allow_private", True)
    server = CalendarServer().start()
    yield server
    server.stop()


def checked(site: Site, path: str | None = None):
    page = site.goto(path) if path else site.check()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.url
    assert_accessible(page)
    return page


@pytest.mark.parametrize("width", [1100, 375], ids=["desktop", "phone"])
def test_a_teacher_connects_a_calendar_sees_it_read_asks_why_and_removes_it(api, new_context, calendars, width):
    with http_client(base_url=api.state.base_url, timeout=60) as c:
        teacher = f.teacher(c, time_zone=cal.ZONE, windows=[{"weekday": 0, "start": "09:00", "end": "12:00"}])
    monday = cal.next_monday()
    body = cal.calendar(cal.event("a@x", "SUMMARY:Private dentist", *cal.timed(monday, 10, 11)))
    url = calendars.serve("/secret-abc123/basic.ics", body=body)

    site = Site(new_context(timezone_id=cal.ZONE, width=width, height=900), api.state.base_url)
    site.log_in(teacher["email"])
    page = checked(site, "/teacher/calendars")
    expect(page.get_by_text("No calendar connected.")).to_be_visible()
    page.get_by_label("Secret iCal address").fill("ftp://example.com/a.ics")
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_text("The address must start with https://")).to_be_visible()
    checked(site)
    page.get_by_label("Secret iCal address").fill(url)
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("status")).to_have_text("Calendar connected: 1 busy time ahead.")
    assert "secret-abc123" not in page.content()
    checked(site)

    h.run(api, "calendar-sync")
    page = checked(site, "/teacher/calendars")
    expect(page.get_by_text(re.compile(r"1 busy time ahead\.$"))).to_be_visible()
    page.get_by_label("Start (date and time").fill(f"{monday:%Y-%m-%d}T10:30")
    page.get_by_label("Session length (minutes)").select_option("30")
    page.get_by_role("button", name="Explain").click()
    expect(page.get_by_text("This time is not offered, because:")).to_be_visible()
    expect(page.get_by_text(re.compile("Your calendar http://127.0.0.1/….ics is busy then"))).to_be_visible()
    assert "dentist" not in page.content()
    checked(site)

    page.get_by_role("button", name=re.compile("Remove")).click()
    expect(page.get_by_role("status")).to_contain_text("Calendar removed")
    checked(site)
