"""Shared by the jobs and admin tests: bookings in a given state, the clock, running a job."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from tests import factories as f
from tests.support import payments as pay
from tests.support.servers import http_client, http_get
from tutorbook import jobs
from tutorbook.accounts import service as accounts
from tutorbook.accounts.models import Role
from tutorbook.bookings import link_records
from tutorbook.bookings.models import Booking, Payment
from tutorbook.clock import utc_now


def later(*, minutes: float = 32) -> datetime:
    """A `now` after every checkout opened in this test has expired (they last 31 minutes)."""
    return utc_now() + timedelta(minutes=minutes)


def run(api, name: str, *, now: datetime | None = None, **kwargs) -> jobs.JobResult:
    """Run job `name` as the scheduler would, counted in the app's metrics."""
    return jobs.run(name, api.state.services, now=now or utc_now(), metrics=api.state.metrics, **kwargs)


def webhooks_off(sandbox) -> None:
    """The sandbox records events but delivers none: the jobs alone must cope."""
    pay.sandbox_config(sandbox, deliver_webhooks=False)


def sandbox_since(sandbox) -> datetime:
    """A start for reconcile's window that leaves out the checkouts of earlier tests (the sandbox
    lives for the whole session): the next whole second of the sandbox's clock, once reached."""
    start = http_get(f"{sandbox.base_url}/_sandbox/clock", timeout=10).json()["now"] + 1
    while http_get(f"{sandbox.base_url}/_sandbox/clock", timeout=10).json()["now"] < start:
        time.sleep(0.05)
    return datetime.fromtimestamp(start, UTC)


def booked(c: httpx.Client, *, teacher=None, parent=None, days: int = 2, hour: int = 10) -> dict:
    """A Pending booking with an open checkout: {"t", "p", "b"}."""
    t, p = teacher or f.teacher(c), parent or f.parent(c)
    r = f.book(p, t, starts_at=f.slot(days=days, hour=hour))
    assert r.status_code == 201, r.text
    return {"t": t, "p": p, "b": r.json()["data"]}


def paid_at_stripe(c: httpx.Client, **kwargs) -> dict:
    """A booking paid on the checkout page and nothing else (confirming is left to others)."""
    x = booked(c, **kwargs)
    assert pay.pay(x["b"]["checkoutUrl"]).status_code == 303
    return x


def confirmed(c: httpx.Client, **kwargs) -> dict:
    """A paid and Confirmed booking (through the success page's call)."""
    x = paid_at_stripe(c, **kwargs)
    r = x["p"]["client"].post(f"/api/Sessions/confirm-payment/{x['b']['stripeSessionId']}")
    assert r.json()["data"]["status"] == 1, r.text
    return x


def row(api, booking_id) -> Booking | None:
    return pay.booking_row(api.state.db, booking_id)


# A booking's columns that live in its records since issue #27 (the name each has there).
PAYMENT_COLUMNS = {"stripe_session_id": "stripe_checkout_id"} | {
    name: name
    for name in (
        "stripe_payment_intent_id", "checkout_url", "checkout_expires_at", "refunded_amount", "payout_destination",
        "platform_fee_amount", "stripe_charge_id", "stripe_transfer_id", "stripe_application_fee_id",
        "transfer_amount", "transfer_reversed_amount", "fee_refunded_amount",
    )
}  # fmt: skip
MEETING_COLUMNS = {
    f"meeting_{name}": name for name in ("url", "provider", "external_id", "attempts", "next_attempt_at", "error")
}


def set_columns(api, booking_id, **values) -> None:
    """Rewrite columns directly (to age a booking or break it on purpose): the booking's own, and
    under their old names those of its payment and meeting link."""
    booking_id = uuid.UUID(str(booking_id))
    own = {k: v for k, v in values.items() if k not in PAYMENT_COLUMNS and k not in MEETING_COLUMNS}
    paid = {PAYMENT_COLUMNS[k]: v for k, v in values.items() if k in PAYMENT_COLUMNS}
    link = {MEETING_COLUMNS[k]: v for k, v in values.items() if k in MEETING_COLUMNS}
    with api.state.db.session_scope() as s:
        if own:
            s.execute(sa.update(Booking).where(Booking.id == booking_id).values(**own))
        if paid:
            own_payment = sa.and_(Payment.booking_id == booking_id, Payment.state != "refused")
            s.execute(sa.update(Payment).where(own_payment).values(**paid))
        if link:
            link_records.write_link(s, booking_id, link, without_url=False)


def admin_client(api, c: httpx.Client) -> httpx.Client:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    with api.state.db.session_scope() as s:
        accounts.create_user(
            s,
            hasher=api.state.hasher,
            settings=api.state.settings,
            email=email,
            password=f.PASSWORD,
            full_name="Admin",
            role=Role.ADMIN,
            now=utc_now(),
        )
    return http_client(
        base_url=api.state.base_url,
        timeout=60,
        headers={"Authorization": "Bearer " + f.login(c, email=email)},
    )
