"""Lesson packages in headless Chromium (issue #28): a parent buys a teacher's package on the
hosted checkout, lands on the success page with the credits, books a lesson with "Use a credit",
and sees the wallet; every page axe-clean (no serious or critical violation), on a phone too."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests import factories as f
from tests.browser.axe import assert_accessible
from tests.browser.site import Site
from tests.credits import helpers as h
from tests.support.servers import http_client

pytestmark = pytest.mark.browser
WINDOWS = [{"weekday": d, "start": "10:00", "end": "12:00"} for d in range(7)]


@pytest.fixture
def teacher(api):
    with http_client(base_url=api.state.base_url, timeout=30) as c:
        t = f.teacher(c, rate=4500, windows=WINDOWS, time_zone="Europe/Berlin")
    t["name"] = t["user"]["fullName"]
    h.package(t, lessons=3, duration=60, price=12000)
    return t


@pytest.mark.parametrize("width", [1100, 390], ids=["desktop", "phone"])
def test_buy_a_package_then_book_with_a_credit(api, sandbox, teacher, new_context, width):
    site = Site(new_context(timezone_id="America/New_York", width=width, height=900), api.state.base_url)
    site.register_parent()
    site.add_child("Robin")
    page = site.goto(f"/teachers/{teacher['user']['id']}")
    expect(page.get_by_role("heading", name="Lesson packages")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name=re.compile("^Buy")).click()
    expect(page.get_by_text("Test mode – Stripe sandbox")).to_be_visible()
    site.pay()
    expect(page.get_by_role("heading", name=re.compile("your credits are ready"))).to_be_visible()
    site.check()
    assert_accessible(page)

    page = site.choose_time(teacher["name"])
    page.get_by_label("Child").select_option(label="Robin")
    button = page.get_by_role("button", name="Use a credit (3 left)")
    expect(button).to_be_visible()
    assert_accessible(page)
    button.click()
    expect(page.get_by_role("heading", name="My Bookings")).to_be_visible()
    expect(page.locator(".booking").first).to_contain_text("Confirmed")
    site.check()
    assert_accessible(page)

    page = site.goto("/credits")
    expect(page.locator(".credit-count")).to_have_text("2")
    assert_accessible(page)


def test_the_teacher_adds_a_package_on_an_accessible_page(api, teacher, new_context):
    site = Site(new_context(timezone_id="Europe/Berlin"), api.state.base_url)
    site.log_in(teacher["email"])
    page = site.goto("/teacher/packages")
    assert_accessible(page)
    page.get_by_label("Lessons").fill("10")
    page.get_by_label("Price of the whole package").fill("400.00")
    page.get_by_role("button", name="Add package").click()
    expect(page.get_by_role("status")).to_contain_text("Package added")
    expect(page.locator("tr.package")).to_have_count(2)
    assert_accessible(site.check())
