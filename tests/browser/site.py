"""Driving Tutorbook's pages as a person would: by labels, roles and link texts."""

from __future__ import annotations

import itertools
import re

from playwright.sync_api import BrowserContext, Page, expect

from tests import factories as f

GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"
_seq = itertools.count(1)


class Site:
    """One person's browser tab on the app; every page it lands on is checked for "Unknown"."""

    def __init__(self, context: BrowserContext, base_url: str, *, javascript: bool = True):
        self.page: Page = context.new_page()
        self.base = base_url
        self.javascript = javascript

    def goto(self, path: str) -> Page:
        self.page.goto(self.base + path)
        self.settle()
        return self.check()

    def settle(self) -> None:
        """The first page a browser sees keeps its zone in a cookie (static/timezone.js) and may
        reload once to show it: wait for that, so the test acts on the final page. Without
        JavaScript nothing sets it: the pages fall back to the profile's zone, or UTC."""
        if not self.javascript:
            self.page.wait_for_load_state("load")
            return
        self.page.wait_for_function("document.cookie.includes('tutorbook_zone=')")
        self.page.wait_for_load_state("load")

    def check(self) -> Page:
        """The page is a real page: no "Unknown", no stack trace."""
        html = self.page.content()
        for word in ("Unknown", "Traceback", "Internal Server Error"):
            assert word not in html, f"{word!r} on {self.page.url}"
        return self.page

    # -- accounts ----------------------------------------------------------------------

    def register_parent(self, *, name: str = "Pat Parent") -> str:
        email = f"web-parent{next(_seq)}@example.com"
        page = self.goto("/register")
        page.get_by_label("Full name").fill(name)
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(f.PASSWORD)
        page.get_by_label("Parent").check()
        page.get_by_role("button", name="Register").click()
        expect(page.get_by_role("heading", name="Your children")).to_be_visible()
        self.check()
        return email

    def log_in(self, email: str, password: str = f.PASSWORD) -> None:
        page = self.goto("/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name=re.compile("Log out"))).to_be_visible()
        self.check()

    def add_child(self, name: str = "Robin") -> None:
        page = self.goto("/children")
        page.get_by_label("Child's name").fill(name)
        page.get_by_role("button", name="Add child").click()
        expect(page.get_by_role("status")).to_have_text(f"{name} added.")
        self.check()

    # -- booking and paying ------------------------------------------------------------

    def choose_time(self, teacher_name: str, *, minutes: int = 60) -> Page:
        """The teacher's page, the length first, next week, its first start: the booking form opens there."""
        page = self.goto("/")
        page.get_by_role("link", name=teacher_name, exact=True).click()
        page.get_by_label("Session length").select_option(str(minutes))
        page.get_by_role("button", name="Show times").click()
        page.get_by_role("link", name="Later week →").click()
        self.check()
        page.locator("a.slot").first.click()
        expect(page.locator("#book")).to_be_visible()
        return self.check()

    def book(self, teacher_name: str, *, child: str = "Robin", minutes: int = 60) -> str:
        """Choose the teacher, the length, next week's first start, the child; land on the checkout page."""
        page = self.choose_time(teacher_name, minutes=minutes)
        page.get_by_label("Child").select_option(label=child)
        page.get_by_role("button", name=re.compile("^Book and pay")).click()
        expect(page.get_by_text("Test mode – Stripe sandbox")).to_be_visible()
        return page.url

    def pay(self, card: str = GOOD_CARD) -> None:
        page = self.page
        page.get_by_label("Card number").fill(card)
        page.get_by_label("Expiry date").fill("12 / 34")
        page.get_by_label("CVC").fill("123")
        page.get_by_label("Name on card").fill("Pat Parent")
        page.get_by_role("button", name="Pay").click()

    def my_bookings(self) -> Page:
        page = self.goto("/my-bookings")
        expect(page.get_by_role("heading", name="My Bookings")).to_be_visible()
        return page
