"""The five browser scenarios of issue #5, in headless Chromium against the live app and sandbox."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests import factories as f
from tests.browser.site import DECLINED_CARD, Site
from tests.support import payments as pay
from tests.support.servers import http_client
from tests.web.helpers import move_into_past

pytestmark = pytest.mark.browser
# 10:00-12:00 every day in the teacher's zone (Europe/Berlin). The tests book next week's first
# free time, so "now" never gets in the way.
WINDOWS = [{"weekday": d, "start": "10:00", "end": "12:00"} for d in range(7)]


@pytest.fixture
def teacher(api):
    with http_client(base_url=api.state.base_url, timeout=30) as c:
        t = f.teacher(c, rate=4500, windows=WINDOWS, time_zone="Europe/Berlin")
    t["name"] = t["user"]["fullName"]
    return t


@pytest.fixture
def parent(api, parent_context):
    site = Site(parent_context, api.state.base_url)
    site.email = site.register_parent()
    site.add_child("Robin")
    return site


def booking_id(checkout_url: str, sandbox) -> str:
    checkout = pay.sandbox_session(sandbox, checkout_url.rstrip("/").rsplit("/", 1)[-1])
    return checkout["client_reference_id"]


@pytest.mark.parametrize("substitute", [False, True], ids=["template-left", "template-filled"])
def test_a_back_on_checkout_lands_on_the_cancel_page_and_no_booking_is_kept(api, sandbox, teacher, parent, substitute):
    pay.sandbox_config(sandbox, substitute_cancel_url=substitute)
    checkout = parent.book(teacher["name"])
    parent.page.get_by_role("link", name="Back").click()
    page = parent.check()
    expect(page.get_by_role("heading", name="Your booking was not made")).to_be_visible()
    assert ("%7BCHECKOUT_SESSION_ID%7D" in page.url or "{CHECKOUT_SESSION_ID}" in page.url) is not substitute
    assert pay.booking_row(api.state.db, booking_id(checkout, sandbox)).status == 3
    page.reload()
    expect(parent.check().get_by_role("heading", name="Your booking was not made")).to_be_visible()
    page = parent.my_bookings()
    expect(page.get_by_text("You have no bookings yet")).to_be_visible()
    expect(page.locator(".booking")).to_have_count(0)


def test_b_paying_shows_the_success_page_then_confirmed_with_a_meeting_link(api, teacher, parent):
    parent.book(teacher["name"])
    parent.pay()
    page = parent.page
    expect(page).to_have_url(re.compile(r"/payment/success\?session_id=cs_test_"))
    expect(page.get_by_role("heading", name="Payment received – your session is booked")).to_be_visible()
    parent.check()
    page.get_by_role("link", name="Go to My Bookings").click()
    card = parent.check().locator(".booking")
    expect(card).to_have_count(1)
    expect(card.locator(".badge")).to_have_text("Confirmed")
    expect(card.get_by_role("link", name=re.compile("Join the meeting"))).to_have_attribute(
        "href", re.compile(r"^https://meet\.jit\.si/Tutorbook-[0-9a-f]{32}$")
    )
    expect(card).to_contain_text("USD 45.00")
    expect(card).to_contain_text(re.compile(r"(EST|EDT)"))  # the parent's zone, named
    expect(page.get_by_text("Times are shown in Eastern Time – New York")).to_be_visible()  # friendly (#13)


def test_c_a_declined_card_stays_on_the_checkout_page_with_the_error(api, sandbox, teacher, parent):
    checkout = parent.book(teacher["name"])
    parent.pay(DECLINED_CARD)
    page = parent.page
    expect(page.get_by_role("alert")).to_have_text("Your card was declined.")
    assert page.url == checkout
    assert pay.booking_row(api.state.db, booking_id(checkout, sandbox)).status == 0
    page = parent.my_bookings()
    expect(page.locator(".booking .badge")).to_have_text("Pending")
    expect(page.get_by_role("link", name="Resume payment")).to_have_attribute("href", checkout)


def test_d_the_teacher_marks_the_session_completed_and_the_parent_sees_it(
    api, sandbox, teacher, parent, teacher_context
):
    checkout = parent.book(teacher["name"])
    parent.pay()
    expect(parent.page.get_by_role("heading", name=re.compile("Payment received"))).to_be_visible()
    teacher_site = Site(teacher_context, api.state.base_url)
    teacher_site.log_in(teacher["email"])
    page = teacher_site.goto("/schedule")
    card = page.locator(".booking")
    expect(card).to_contain_text("Robin")
    expect(card.locator(".badge")).to_have_text("Confirmed")
    expect(page.get_by_text("You can mark it completed once it starts.")).to_be_visible()
    expect(page.get_by_text("Times are shown in Central European Time – Berlin")).to_be_visible()
    # The app has no settable clock: the test moves the paid session into the past in the database.
    move_into_past(api.state.db, booking_id(checkout, sandbox))
    page.reload()
    page.get_by_role("button", name="Mark completed").click()
    expect(page.get_by_role("status")).to_have_text("Session marked completed.")
    expect(teacher_site.check().locator(".booking .badge")).to_have_text("Completed")
    page = parent.my_bookings()
    expect(page.locator(".booking .badge")).to_have_text("Completed")


def test_e_no_page_shows_unknown_and_all_work_at_phone_width_by_keyboard(api, sandbox, teacher, new_context):
    phone = Site(new_context(timezone_id="Asia/Tokyo", width=375, height=740), api.state.base_url)
    phone.register_parent(name="Kei Parent")
    phone.add_child("Robin")
    phone.book(teacher["name"])
    phone.pay()
    expect(phone.page.get_by_role("heading", name=re.compile("Payment received"))).to_be_visible()
    phone.book(teacher["name"])  # a second one left Pending
    phone.page.get_by_role("link", name="Back").click()
    phone.check()
    phone.book(teacher["name"])
    page = phone.my_bookings()
    expect(page.locator(".badge")).to_have_text(["Confirmed", "Pending"])  # Upcoming, soonest first (#13)
    for path in [
        "/",
        f"/teachers/{teacher['user']['id']}",
        "/children",
        "/my-bookings",
        "/register",
    ]:
        page = phone.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    page = phone.my_bookings()
    page.locator(".booking[data-status=Pending]").get_by_role("link", name=re.compile("^Cancel")).click()
    expect(phone.check().locator("#refund")).to_contain_text("Nothing has been paid")
    # Keyboard: the skip link comes first, and a form submits with Enter.
    page = phone.goto("/login")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_label("Email").focus()
    page.keyboard.type("nobody@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type("not-the-password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password")
    phone.check()


def test_f_a_teacher_connects_payouts_and_reads_earnings_on_a_phone(api, teacher, new_context):
    phone = Site(new_context(width=390, height=844), api.state.base_url)
    phone.log_in(teacher["email"])
    page = phone.goto("/teacher/payouts")
    expect(page.locator("#payout-state")).to_contain_text("not connected payouts yet")
    page.get_by_role("button", name="Connect payouts with Stripe").click()
    page.get_by_role("button", name=re.compile("^Submit")).click()  # the sandbox's hosted onboarding
    expect(page.locator("#payout-state")).to_contain_text("Payouts are on")
    phone.check()
    for path in ("/teacher/payouts", "/teacher/earnings"):
        page = phone.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    page.get_by_role("link", name="Payouts").first.click()
    expect(page.get_by_role("heading", name="Payouts")).to_be_visible()
