"""What README.md says happens to a checkout that is not paid, checked as a parent sees it:
the checkout's own Back/cancel link cancels the booking and it is not shown; the browser's Back
leaves it Pending in My Bookings ("Resume payment" or "Cancel", a banner on every other page),
holding the slot until it expires after TUTORBOOK_CHECKOUT_TTL_MINUTES; then it is cancelled and
gone, and the slot is free again."""

from __future__ import annotations

from datetime import timedelta

from tests import factories as f
from tests.jobs.helpers import run
from tests.support import payments as pay
from tests.support.servers import wait_for
from tests.web.helpers import assert_clean, text_of
from tutorbook.clock import utc_now


def starts_offered(c, teacher, start: str) -> bool:
    day = start[:10]
    r = c.get(
        f"/api/Teachers/{teacher['user']['id']}/availability",
        params={"from": f"{day}T00:00:00Z", "to": f"{day}T23:59:59Z"},
    )
    return start in [s["startsAt"] for s in r.json()["data"]]


def test_the_checkouts_own_cancel_link_leaves_nothing_in_my_bookings(api, c, parent_web, parent, teacher):
    start = f.slot(days=3)
    b = f.book(parent, teacher, starts_at=start).json()["data"]
    r = parent_web.get(f"/payment/cancel?session_id={b['stripeSessionId']}&type=session-booking")
    assert "not made" in text_of(r)
    page = parent_web.get("/my-bookings")
    assert b["id"] not in page.text and "Resume payment" not in page.text
    assert starts_offered(c, teacher, start)


def test_after_the_browsers_back_an_unpaid_checkout_is_pending_resumable_cancellable_and_expires(
    api, c, parent_web, parent, teacher
):
    start = f.slot(days=3)
    b = f.book(parent, teacher, starts_at=start).json()["data"]  # then Back: the app is told nothing
    page = parent_web.get("/my-bookings")
    assert_clean(page)
    assert page.text.count('class="badge badge-pending"') == 1
    assert f'href="{b["checkoutUrl"]}"' in page.text and "Resume payment" in page.text  # resumable
    assert f"/bookings/{b['id']}/cancel" in page.text  # cancellable
    elsewhere = parent_web.get("/")
    assert "You have an unpaid booking" in text_of(elsewhere) and f"/bookings/{b['id']}/cancel" in elsewhere.text
    assert not starts_offered(c, teacher, start)  # the slot is held meanwhile

    ttl = api.state.settings.checkout_ttl_minutes
    assert run(api, "expire", now=utc_now() + timedelta(minutes=ttl - 5)).items == []  # still within its time
    run(api, "expire", now=utc_now() + timedelta(minutes=ttl + 2))  # (or the expiry's webhook, whichever is first)
    wait_for(lambda: pay.booking_row(api.state.db, b["id"]).status == 3, message="cancelled")
    page = parent_web.get("/my-bookings")
    assert b["id"] not in page.text and "Resume payment" not in page.text
    assert "You have an unpaid booking" not in text_of(parent_web.get("/"))
    assert starts_offered(c, teacher, start)


def test_an_unpaid_checkout_cancelled_from_my_bookings_is_gone_and_frees_the_slot(api, c, parent_web, parent, teacher):
    start = f.slot(days=4)
    b = f.book(parent, teacher, starts_at=start).json()["data"]
    parent_web.get(f"/bookings/{b['id']}/cancel")
    r = parent_web.post(f"/bookings/{b['id']}/cancel", {})
    assert r.status_code == 303
    page = parent_web.get("/my-bookings")
    assert b["id"] not in page.text and "Resume payment" not in page.text
    assert starts_offered(c, teacher, start)
