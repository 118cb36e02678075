"""Issue #15 in headless Chromium: a parent changes the time of a paid session; the new pages pass
axe-core (no serious or critical violations) and fit a 390 px phone."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from playwright.sync_api import expect

from tests import factories as f
from tests.browser.accessibility import serious_violations
from tests.browser.site import Site
from tests.support import payments as pay
from tests.support.servers import http_client

pytestmark = pytest.mark.browser
WINDOWS = [{"weekday": d, "start": "10:00", "end": "12:00"} for d in range(7)]


@pytest.fixture
def teacher(api):
    with http_client(base_url=api.state.base_url, timeout=30) as c:
        t = f.teacher(c, rate=4500, windows=WINDOWS, time_zone="Europe/Berlin")
    t["name"] = t["user"]["fullName"]
    return t


def test_a_parent_changes_the_time_of_a_paid_session(api, sandbox, teacher, new_context):
    phone = Site(new_context(timezone_id="America/New_York", width=390, height=844), api.state.base_url)
    phone.register_parent()
    phone.add_child("Robin")
    checkout = phone.book(teacher["name"])
    booking_id = pay.sandbox_session(sandbox, checkout.rstrip("/").rsplit("/", 1)[-1])["client_reference_id"]
    page = phone.page
    phone.pay()
    expect(page.get_by_role("heading", name=re.compile("Payment received"))).to_be_visible()
    before = pay.booking_row(api.state.db, booking_id)

    page = phone.my_bookings()
    card = page.locator(".booking")
    expect(card).to_contain_text("Free cancellation up to 24 hours before the start")
    assert serious_violations(page) == []
    card.get_by_role("link", name=re.compile("^Change time")).click()
    page = phone.check()
    expect(page.get_by_role("heading", name="Change the time")).to_be_visible()
    page.get_by_role("link", name="Later week →").click()
    phone.check()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert serious_violations(page) == []
    choice = page.get_by_role("radio").last
    new_start = choice.get_attribute("value")
    choice.check()
    page.get_by_role("button", name="Move the session").click()
    expect(page.get_by_role("status")).to_contain_text("Session moved to")
    phone.check()

    after = pay.booking_row(api.state.db, booking_id)
    assert after.starts_at == datetime.fromisoformat(new_start.replace("Z", "+00:00")) != before.starts_at
    assert after.ends_at - after.starts_at == before.ends_at - before.starts_at
    assert (after.id, after.status, after.price_amount, after.stripe_payment_intent_id, after.meeting_url) == (
        before.id,
        1,
        before.price_amount,
        before.stripe_payment_intent_id,
        before.meeting_url,
    )
    assert pay.history(api.state.db, booking_id)[-1] == (1, 1, "rescheduled")
    expect(page.locator(".booking time")).to_have_attribute("datetime", new_start)


def test_the_teachers_terms_page_is_accessible_and_saves(api, teacher, teacher_context):
    site = Site(teacher_context, api.state.base_url)
    site.log_in(teacher["email"])
    page = site.goto("/schedule")
    page.get_by_role("link", name=re.compile("cancellation and reschedule terms")).click()
    page = site.check()
    assert serious_violations(page) == []
    page.get_by_label("Refund (percent of the price) for a later cancellation").fill("50")
    page.get_by_label("Most times a parent may change one booking's time").fill("1")
    page.get_by_role("button", name="Save terms").click()
    expect(page.get_by_role("status")).to_contain_text("Terms saved")
    expect(page.locator("#terms")).to_have_text(
        "Free cancellation up to 24 hours before the start, a 50% refund after that; "
        "change the time once, until 24 hours before the start."
    )
