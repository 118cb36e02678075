"""Issue #13 in headless Chromium: a teacher sets up on the web, a parent in another zone on a
phone books and pays them; the picker offers only starts that fit; Back from the checkout shows
the unpaid-booking banner; axe-core finds nothing serious or critical on any page on the way."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests import factories as f
from tests.browser.axe import assert_accessible
from tests.browser.site import Site
from tests.support.servers import http_client

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


def checked(site: Site, path: str | None = None):
    """The page (after going to `path`), clean, no sideways scrolling, and accessible."""
    page = site.goto(path) if path else site.check()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.url
    assert_accessible(page)
    return page


def test_a_teacher_sets_up_on_the_web_and_a_parent_in_another_zone_books_and_pays_on_a_phone(api, new_context):
    # The teacher, on a desktop in Berlin.
    teacher = Site(new_context(timezone_id="Europe/Berlin"), api.state.base_url)
    page = teacher.goto("/register")
    page.get_by_label("Full name").fill("Marie Curie")
    page.get_by_label("Email").fill("marie@example.com")
    page.get_by_label("Password").fill(f.PASSWORD)
    page.get_by_label("Teacher").check()
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlin")  # suggested by the browser
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="Before parents can find you")).to_be_visible()
    checked(teacher)
    page.get_by_label("Subjects you teach").fill("Chemistry, Physics")
    page.get_by_label("Hourly rate").fill("50")
    page.get_by_label("Currency").select_option("eur")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("status")).to_have_text("Profile saved.")
    page.get_by_role("link", name="Add at least one weekly window of hours").click()
    checked(teacher)
    for row, day in enumerate(("1", "3")):  # Tuesdays and Thursdays, 16:00-19:00 Berlin
        page.locator(f"#weekday_{row}").select_option(day)
        page.locator(f"#start_{row}").fill("16:00")
        page.locator(f"#end_{row}").fill("19:00")
    page.get_by_role("button", name="Save hours").click()
    expect(page.get_by_role("heading", name=re.compile("You are listed"))).to_be_visible()
    checked(teacher, "/teacher/time-off")
    checked(teacher, "/schedule")

    # The parent, on a phone in New York, logged out, 12-hour clock.
    parent = Site(new_context(timezone_id="America/New_York", locale="en-US", **PHONE), api.state.base_url)
    page = checked(parent, "/")
    page.get_by_role("link", name="Marie Curie", exact=True).click()
    page.get_by_label("Session length").select_option("90")
    page.get_by_role("button", name="Show times").click()
    page.get_by_role("link", name="Later week →").click()
    page = checked(parent)
    expect(page.get_by_text("Eastern Time – New York").first).to_be_visible()
    slot = page.locator("a.slot").first
    box = slot.bounding_box()
    assert box["height"] >= 44 and box["width"] >= 44
    assert re.fullmatch(r"(1[0-2]|[1-9]):[0-5]\d\s?(AM|PM)", slot.inner_text().replace("\u202f", " "))
    slot.click()
    expect(page.locator("#book")).to_be_visible()
    page.locator("#book").get_by_role("link", name="register").click()
    page.get_by_label("Full name").fill("Pat Parent")
    page.get_by_label("Email").fill("pat@example.com")
    page.get_by_label("Password").fill(f.PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="Your children")).to_be_visible()
    checked(parent)
    page.get_by_label("Child's name").fill("Robin")
    page.get_by_role("button", name="Add child").click()
    # Back at the chosen time, the booking form right next to it.
    expect(page.locator("#book").get_by_role("button", name=re.compile("^Book and pay EUR 75.00"))).to_be_visible()
    checked(parent)
    page.get_by_role("button", name=re.compile("^Book and pay")).click()
    expect(page.get_by_text("Test mode – Stripe sandbox")).to_be_visible()
    expect(
        page.get_by_role("heading", name=re.compile(r"Chemistry with Marie Curie for Robin, .* (EST|EDT)"))
    ).to_be_visible()
    # The browser's Back: the slot is held, and every page says so.
    page.go_back()
    parent.settle()
    banner = page.locator(".hold-banner")
    expect(banner).to_contain_text("You have an unpaid booking")
    checked(parent)
    checked(parent, "/children")
    expect(page.locator(".hold-banner")).to_be_visible()
    page.locator(".hold-banner").get_by_role("link", name=re.compile("^Resume payment")).click()
    parent.pay()
    expect(page.get_by_role("heading", name=re.compile("Payment received"))).to_be_visible()
    checked(parent)
    page = checked(parent, "/my-bookings")
    expect(page.locator(".hold-banner")).to_have_count(0)
    card = page.locator(".upcoming .booking")
    expect(card.locator(".badge")).to_have_text("Confirmed")
    expect(card.get_by_role("link", name=re.compile("^Add to calendar"))).to_be_visible()
    expect(card.get_by_role("link", name=re.compile("^Book again"))).to_be_visible()

    # The teacher sees who booked, with the parent's email.
    page = checked(teacher, "/schedule")
    expect(page.locator(".booking")).to_contain_text("pat@example.com")
    expect(page.locator(".booking")).to_contain_text("Pat Parent")


def test_the_picker_offers_only_starts_that_fit_for_30_60_and_90_minutes(api, new_context):
    with http_client(base_url=api.state.base_url, timeout=30) as c:
        t = f.teacher(c, windows=[{"weekday": d, "start": "10:00", "end": "12:00"} for d in range(7)])
        p = f.parent(c)
        held = (datetime.now(UTC) + timedelta(days=8)).replace(hour=11, minute=0, second=0, microsecond=0)
        r = f.book(p, t, starts_at=held.isoformat().replace("+00:00", "Z"), duration=30)
        assert r.status_code == 201, r.text
    for size in ({"width": 1100, "height": 900}, PHONE):
        site = Site(new_context(timezone_id="UTC", **size), api.state.base_url)
        counts = {}
        for minutes in (30, 60, 90):
            page = site.goto(f"/teachers/{t['user']['id']}?week=1&duration={minutes}")
            starts = [
                datetime.fromisoformat(s.replace("Z", "+00:00"))
                for s in page.locator("a.slot").evaluate_all("els => els.map(e => e.dataset.start)")
            ]
            for s in starts:  # every offered session ends by 12:00 and clears the 11:00-11:30 booking
                assert s + timedelta(minutes=minutes) <= s.replace(hour=12, minute=0)
                assert not (s < held + timedelta(minutes=30) and held < s + timedelta(minutes=minutes))
            counts[minutes] = len(starts)
        assert counts == {30: 6 * 4 + 3, 60: 6 * 3 + 1, 90: 6 * 2}
        assert_accessible(page)
