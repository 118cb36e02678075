"""The operator console in headless Chromium: an admin finds a booking by its Stripe id, cancels
it with a full refund and sees the refund settle; every console page has no serious or critical
axe-core violation, fits a 390 px phone and works without JavaScript."""

from __future__ import annotations

import re
import uuid

import pytest
import sqlalchemy as sa
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests import factories as f
from tests.browser.site import Site
from tests.jobs.helpers import confirmed
from tests.support import payments as pay
from tests.support.servers import http_client, wait_for
from tests.web.helpers import make_admin
from tutorbook import jobs
from tutorbook.clock import utc_now
from tutorbook.notifications.models import Notification

pytestmark = pytest.mark.browser
AXE = Axe()


def assert_accessible(page: Page) -> None:
    """axe-core: no serious or critical violation on the page as it is now."""
    results = AXE.run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{page.url}: " + "; ".join(f"{v['id']} ({v['impact']}): {v['help']}" for v in bad)


def fits(page: Page, width: int) -> None:
    """Nothing makes the page scroll sideways (wide tables scroll inside their own box)."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.url


@pytest.fixture
def paid(api):
    with http_client(base_url=api.state.base_url, timeout=60) as c:
        return confirmed(c, teacher=f.teacher(c, rate=4500))


@pytest.fixture
def admin_site(api, new_context):
    admin = make_admin(api)
    site = Site(new_context(timezone_id="Europe/London"), api.state.base_url)
    site.log_in(admin["email"])
    return site


def test_an_admin_finds_a_booking_by_its_stripe_id_cancels_it_with_a_full_refund_and_sees_it_settle(
    api, paid, admin_site
):
    checkout_id = paid["b"]["stripeSessionId"]
    page = admin_site.goto("/admin")
    expect(page.get_by_role("heading", name="Today at a glance")).to_be_visible()
    expect(page.get_by_text(re.compile("Signed in as Ada Admin"))).to_be_visible()
    assert_accessible(page)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Bookings").click()
    page.get_by_label("Booking or Stripe id").fill(checkout_id)
    page.get_by_role("button", name="Find").click()
    rows = admin_site.check().locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text(checkout_id)
    assert_accessible(page)
    rows.get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("Mathematics"))).to_be_visible()
    expect(page.get_by_text("at Stripe: complete, paid")).to_be_visible()
    assert_accessible(page)

    page.get_by_role("radio", name=re.compile("Full")).check()
    page.get_by_label("Reason (kept in the history)").fill("The teacher is ill")
    page.get_by_role("button", name="Cancel the booking").click()
    expect(page.get_by_role("status")).to_have_text("Booking cancelled. Refunded: USD 45.00.")
    admin_site.check()
    expect(page.locator("h1 .badge")).to_have_text("Cancelled")
    refund = page.locator(".refund")
    expect(refund).to_have_count(1)
    for _ in range(20):  # the sandbox settles refunds at once; a real Stripe may take a moment
        if refund.get_attribute("data-status") == "succeeded":
            break
        page.wait_for_timeout(250)
        page.reload()
    expect(refund).to_have_attribute("data-status", "succeeded")
    expect(refund).to_contain_text(re.compile(r"USD 45\.00 · succeeded · re_"))
    expect(page.locator("#refunded")).to_have_text("USD 45.00")
    moved = page.locator("tr.event", has_text="Confirmed → Cancelled")
    expect(moved).to_contain_text("admin cancelled")
    expect(moved).to_contain_text("The teacher is ill")
    expect(moved).to_contain_text("Ada Admin")
    expect(page.locator("tr.event").last).to_contain_text("refund: full (4500 usd)")
    assert_accessible(page)
    assert pay.booking_row(api.state.db, paid["b"]["id"]).refunded_amount == 4500


def test_every_console_page_is_accessible_fits_a_phone_and_needs_no_javascript(api, paid, chromium, request):
    admin = make_admin(api)
    context = chromium.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False, locale="en-GB")
    request.node.browser_contexts = [context]
    site = Site(context, api.state.base_url, javascript=False)
    page = site.goto("/login")
    page.get_by_label("Email").fill(admin["email"])
    page.get_by_label("Password").fill(f.PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Today at a glance")).to_be_visible()
    booking = paid["b"]["id"]
    paths = [
        "/admin",
        "/admin/bookings",
        f"/admin/bookings?parent={paid['p']['email']}",
        f"/admin/bookings/{booking}",
        "/admin/reconcile",
        "/admin/users",
        "/admin/reports",
    ]
    # Forms work without JavaScript: resend the confirmation (its emails then listed on the
    # booking; one of them failed, so /admin lists it), reconcile now, then the page with a run.
    wait_for(lambda: pay.booking_row(api.state.db, booking).meeting_url, message="meeting link")
    jobs.run("mail", api.state.services, now=utc_now())
    page = site.goto(f"/admin/bookings/{booking}")
    page.get_by_role("radio", name="Both").check()
    page.get_by_role("button", name="Resend the confirmation").click()
    expect(page.get_by_role("status")).to_have_text("The confirmation was queued again: 2 emails are on the way.")
    with api.state.db.session_scope() as s:
        s.execute(
            sa.update(Notification)
            .where(Notification.booking_id == uuid.UUID(booking), Notification.kind == "confirmed.teacher")
            .values(status="failed", last_error="550 5.1.1 No such mailbox", attempts=1, updated_at=utc_now())
        )
    page = site.goto("/admin")
    expect(page.locator("tr.mail-failure").first).to_contain_text("No such mailbox")
    page = site.goto("/admin/reconcile")
    page.get_by_role("button", name="Reconcile now").click()
    expect(page.get_by_role("status")).to_contain_text("Reconciled:")
    for path in paths:
        page = site.goto(path)
        fits(page, 390)
        # axe runs its own script; the page itself stays without JavaScript.
        with_js = context.browser.new_context(viewport={"width": 390, "height": 844})
        request.node.browser_contexts.append(with_js)
        with_js.add_cookies(context.cookies())
        checked = with_js.new_page()
        checked.goto(api.state.base_url + path)
        assert_accessible(checked)
        with_js.close()
        request.node.browser_contexts.remove(with_js)
    context.close()
