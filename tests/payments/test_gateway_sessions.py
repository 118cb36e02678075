"""The gateway's async Checkout Session calls (the success and cancel pages'), against the
sandbox through the real SDK: they read Stripe's JSON as a plain dict (the SDK's raw_request)
and must answer exactly what reading the SDK's StripeObject for the same session answers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import stripe

from tests.support import payments as pay
from tutorbook.bookings.checkout import Checkout
from tutorbook.payments import gateway as gw
from tutorbook.payments import objects


def open_checkout(gateway: gw.StripeGateway) -> Checkout:
    booking_id = str(uuid.uuid4())

    async def create() -> Checkout:
        try:
            return await gateway.create_checkout(
                booking_id=booking_id,
                amount=6000,
                currency="usd",
                product_name="Maths with Ann",
                customer_email="parent@example.com",
                success_url="https://app.example/payment/success?session_id={CHECKOUT_SESSION_ID}",
                cancel_url="https://app.example/payment/cancel?session_id={CHECKOUT_SESSION_ID}",
                expires_at=datetime.now(UTC) + timedelta(hours=1),  # the sandbox's clock is the real one
            )
        finally:
            await gateway.aclose()

    return asyncio.run(create())


def through_sdk_objects(sdk: stripe.StripeClient, checkout_id: str) -> Checkout:
    """What the gateway answered before it read the JSON: the SDK's StripeObject, as a dict."""
    return objects.read_checkout(sdk.v1.checkout.sessions.retrieve(checkout_id).to_dict())


def run(gateway: gw.StripeGateway, call):
    async def go():
        try:
            return await call()
        finally:
            await gateway.aclose()

    return asyncio.run(go())


def test_retrieve_checkout_answers_what_the_sdks_object_says(gateway, sdk):
    opened = open_checkout(gateway)
    read = run(gateway, lambda: gateway.retrieve_checkout(opened.id))
    assert read == through_sdk_objects(sdk, opened.id)
    assert (read.status, read.payment_status, read.amount_total, read.currency) == ("open", "unpaid", 6000, "usd")
    assert read.metadata == opened.metadata and read.metadata["booking_id"] == opened.booking_ref
    assert read.url == opened.url and read.url is not None


def test_expire_checkout_answers_the_expired_session_and_says_why_in_its_event(gateway, sdk, sandbox):
    opened = open_checkout(gateway)
    expired = run(gateway, lambda: gateway.expire_checkout(opened.id, reason="payment_cancelled"))
    assert expired == through_sdk_objects(sdk, opened.id)
    assert (expired.id, expired.status, expired.payment_status, expired.url) == (opened.id, "expired", "unpaid", None)
    assert pay.sandbox_session(sandbox, opened.id)["status"] == "expired"
    [event] = [
        e
        for e in sdk.v1.events.list(params={"type": "checkout.session.expired", "limit": 100}).data
        if e.data.object["id"] == opened.id
    ]
    assert gw.expiry_reason(event.to_dict()) == "payment_cancelled"


def test_expire_checkout_of_an_expired_or_unknown_session_is_the_gateways_error(gateway):
    opened = open_checkout(gateway)
    run(gateway, lambda: gateway.expire_checkout(opened.id, reason="payment_cancelled"))
    with pytest.raises(gw.CheckoutNotOpen):
        run(gateway, lambda: gateway.expire_checkout(opened.id, reason="checkout_expired"))
    with pytest.raises(gw.CheckoutNotFound):
        run(gateway, lambda: gateway.expire_checkout("cs_test_does_not_exist", reason="payment_cancelled"))
    with pytest.raises(gw.CheckoutNotFound):
        run(gateway, lambda: gateway.retrieve_checkout("cs_test_does_not_exist"))
