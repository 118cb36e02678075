"""Acting as the parent's browser on the sandbox's hosted checkout page, and reading state."""

from __future__ import annotations

import uuid

import httpx
import sqlalchemy as sa
import stripe

from tests.support.servers import http_get, http_post
from tutorbook.bookings.models import Booking, StatusHistory
from tutorbook.payments.models import Refund

GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"


def pay(checkout_url: str, *, card: str = GOOD_CARD) -> httpx.Response:
    """Submit the hosted page's card form; the 303 (paid) or the page (declined)."""
    form = {"cardNumber": card, "cardExpiry": "12 / 34", "cardCvc": "123", "billingName": "Pat Parent"}
    return http_post(checkout_url, data=form, follow_redirects=False, timeout=30)


def back_link(checkout_url: str) -> str:
    """The href of the hosted page's Back link."""
    import re

    html = http_get(checkout_url, timeout=30).text
    match = re.search(r'<a[^>]*href="([^"]+)"[^>]*>\s*Back', html)
    assert match, "no Back link on the checkout page"
    return match.group(1).replace("&amp;", "&")


def booking_row(db, booking_id) -> Booking:
    with db.session_scope() as s:
        return s.get(Booking, uuid.UUID(str(booking_id)))


def history(db, booking_id) -> list[tuple]:
    with db.session_scope() as s:
        rows = s.scalars(
            sa.select(StatusHistory)
            .where(StatusHistory.session_id == uuid.UUID(str(booking_id)))
            .order_by(StatusHistory.id)
        )
        return [(h.from_status, h.to_status, h.reason) for h in rows]


def refunds(db, booking_id) -> list[Refund]:
    with db.session_scope() as s:
        return list(s.scalars(sa.select(Refund).where(Refund.session_id == uuid.UUID(str(booking_id)))))


def sandbox_session(sandbox, checkout_id: str) -> dict:
    r = http_get(
        f"{sandbox.base_url}/v1/checkout/sessions/{checkout_id}",
        headers={"Authorization": "Bearer sk_test_sandbox"},
        timeout=30,
    )
    r.raise_for_status()
    return r.json()


def sandbox_events(sandbox, type_: str) -> list[dict]:
    """The sandbox's newest events of one type (raw JSON, newest first)."""
    r = http_get(
        f"{sandbox.base_url}/v1/events",
        params={"type": type_, "limit": 100},
        headers={"Authorization": "Bearer sk_test_sandbox"},
    )
    r.raise_for_status()
    return r.json()["data"]


def sandbox_config(sandbox, **values) -> None:
    http_post(f"{sandbox.base_url}/_sandbox/config", json=values, timeout=30).raise_for_status()


def other_checkout(sandbox, *, booking_id, amount: int, currency: str = "usd", success_url: str | None = None) -> dict:
    """A Checkout Session naming `booking_id` as Tutorbook's do (client_reference_id, metadata)
    but not made by Tutorbook for it: another amount, currency or simply a second one. Created
    with the real SDK against the sandbox; pay it with pay(session["url"])."""
    client = stripe.StripeClient(
        "sk_test_sandbox",
        base_addresses={"api": sandbox.base_url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
    )
    ref = str(booking_id)
    params = {
        "mode": "payment",
        "line_items": [
            {"price_data": {"currency": currency, "unit_amount": amount, "product_data": {"name": "x"}}, "quantity": 1}
        ],
        "success_url": success_url or "http://127.0.0.1:9/payment/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1:9/payment/cancel",
        "client_reference_id": ref,
        "metadata": {"booking_id": ref, "type": "session-booking"},
        "payment_intent_data": {"metadata": {"booking_id": ref, "type": "session-booking"}},
    }
    return client.v1.checkout.sessions.create(params=params).to_dict()


def refunded_at_stripe(sandbox, payment_intent: str) -> int:
    """What the sandbox says was refunded of a payment intent's charge."""
    r = http_get(
        f"{sandbox.base_url}/v1/payment_intents/{payment_intent}",
        params={"expand[]": "latest_charge"},
        headers={"Authorization": "Bearer sk_test_sandbox"},
    )
    r.raise_for_status()
    return r.json()["latest_charge"]["amount_refunded"]


def sandbox_get(sandbox, path: str) -> dict:
    """Any object the sandbox holds, as Stripe's JSON (GET `path`)."""
    r = http_get(f"{sandbox.base_url}{path}", headers={"Authorization": "Bearer sk_test_sandbox"}, timeout=30)
    r.raise_for_status()
    return r.json()
