"""Issue #29 in headless Chromium: a parent books weekly lessons from the teacher's page ("Every
week"), sees which weeks are free before paying, and pays the first lesson; the weeks' page and the
series' page pass axe-core (no serious or critical violations) and fit a 390 px phone."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests import factories as f
from tests.browser.axe import assert_accessible
from tests.browser.site import Site
from tests.support.servers import http_client
from tutorbook.accounts.models import User
from tutorbook.clock import utc_now
from tutorbook.credits import ledger
from tutorbook.credits.models import EntryKind

pytestmark = pytest.mark.browser
WINDOWS = [{"weekday": d, "start": "10:00", "end": "12:00"} for d in range(7)]


@pytest.fixture
def teacher(api):
    with http_client(base_url=api.state.base_url, timeout=30) as c:
        t = f.teacher(c, rate=4500, windows=WINDOWS, time_zone="Europe/Berlin")
    t["name"] = t["user"]["fullName"]
    return t


def weeks_page(phone: Site, teacher_name: str, weeks: int) -> None:
    page = phone.choose_time(teacher_name)
    page.get_by_label("Child").select_option(label="Robin")
    page.get_by_label("Every week, same time").check()
    page.get_by_label("Number of weeks").select_option(str(weeks))
    page.get_by_role("button", name=re.compile("^Book and pay")).click()
    expect(page.get_by_role("heading", name="Every week")).to_be_visible()
    phone.check()


def test_the_weeks_are_shown_free_or_not_before_paying(api, teacher, new_context):
    phone = Site(new_context(timezone_id="America/New_York", width=390, height=844), api.state.base_url)
    phone.register_parent()
    phone.add_child("Robin")
    weeks_page(phone, teacher["name"], 4)
    page = phone.page
    boxes = page.get_by_role("checkbox")
    expect(boxes).to_have_count(4)
    for i in range(4):
        expect(boxes.nth(i)).to_be_checked()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert_accessible(page)


def give_credits(api, email: str, teacher: dict, lessons: int) -> None:
    """An operator grants the family `lessons` credits of the teacher's 60-minute lessons."""
    with api.state.db.session_scope() as s:
        parent_id = s.scalar(sa.select(User.id).where(User.email == email))
        ledger.add_lot(
            s,
            parent_id=parent_id,
            teacher_id=uuid.UUID(teacher["user"]["id"]),
            duration_minutes=60,
            lessons=lessons,
            unit_amount=4500,
            currency="usd",
            expires_at=utc_now() + timedelta(days=400),
            kind=EntryKind.ADJUST,
            actor="admin:test",
            now=utc_now(),
            amount=0,
        )


def test_a_parent_books_a_weekly_series_with_credits_every_lesson_confirmed(api, teacher, new_context):
    phone = Site(new_context(timezone_id="America/New_York", width=390, height=844), api.state.base_url)
    email = phone.register_parent()
    phone.add_child("Robin")
    give_credits(api, email, teacher, 3)
    weeks_page(phone, teacher["name"], 3)
    page = phone.page
    page.get_by_label(re.compile("With credits, one a lesson")).check()
    assert_accessible(page)
    page.get_by_role("button", name="Book the ticked weeks").click()
    expect(page.get_by_role("heading", name=re.compile("^Weekly"))).to_be_visible()
    page = phone.check()
    lessons = page.locator(".series-lessons li")
    expect(lessons).to_have_count(3)
    for i in range(3):
        expect(lessons.nth(i)).to_contain_text("Confirmed")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert_accessible(page)
    page = phone.my_bookings()
    expect(page.locator(".weekly")).to_have_count(1)  # the series once, under its next lesson
    expect(page.locator(".weekly")).to_contain_text("2 more lessons")
    assert_accessible(page)


def test_a_parent_books_a_weekly_series_and_pays_the_first_lesson(api, sandbox, teacher, new_context):
    phone = Site(new_context(timezone_id="America/New_York", width=390, height=844), api.state.base_url)
    phone.register_parent()
    phone.add_child("Robin")
    weeks_page(phone, teacher["name"], 3)
    page = phone.page
    page.get_by_role("checkbox").nth(1).uncheck()  # skip the second week
    page.get_by_role("button", name="Book the ticked weeks").click()
    expect(page.get_by_text("Test mode – Stripe sandbox")).to_be_visible()
    phone.pay()
    expect(page.get_by_role("heading", name=re.compile("Payment received"))).to_be_visible()
    page = phone.my_bookings()
    page.get_by_role("link", name=re.compile("weekly", re.I)).first.click()
    page = phone.check()
    lessons = page.locator(".series-lessons li")
    expect(lessons).to_have_count(2)
    expect(lessons.nth(0)).to_contain_text("Confirmed")
    expect(lessons.nth(1)).to_contain_text("Reserved — charged on")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert_accessible(page)
