"""Refunds through the SDK, and the charge.refunded / refund.created events."""

from __future__ import annotations

import pytest
import stripe

from .helpers import session_params, submit_card


def paid_intent(client) -> str:
    """Create and pay a 50.00 USD session; return its PaymentIntent id."""
    session = client.v1.checkout.sessions.create(params=session_params())
    assert submit_card(session.url).status_code == 303
    return client.v1.checkout.sessions.retrieve(session.id).payment_intent


def test_full_refund(client):
    intent_id = paid_intent(client)
    refund = client.v1.refunds.create(
        params={
            "payment_intent": intent_id,
            "reason": "requested_by_customer",
            "metadata": {"booking_id": "42"},
        }
    )
    assert refund.id.startswith("re_") and refund.status == "succeeded"
    assert refund.amount == 5000 and refund.currency == "usd"
    assert refund.payment_intent == intent_id and refund.reason == "requested_by_customer"
    assert client.v1.refunds.retrieve(refund.id).metadata["booking_id"] == "42"
    charge = client.v1.charges.retrieve(refund.charge)
    assert charge.refunded is True and charge.amount_refunded == 5000
    assert [r.id for r in charge.refunds.data] == [refund.id]

    refunded = client.v1.events.list(params={"type": "charge.refunded"}).data
    assert len(refunded) == 1 and refunded[0].data.object.refunded is True
    assert refunded[0].data.previous_attributes.amount_refunded == 0
    created = client.v1.events.list(params={"type": "refund.created"}).data
    assert [e.data.object.id for e in created] == [refund.id]

    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"payment_intent": intent_id})
    assert info.value.http_status == 400 and info.value.code == "charge_already_refunded"


def test_partial_refunds_then_over_refund(client):
    intent_id = paid_intent(client)
    first = client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 2000})
    assert first.amount == 2000
    charge = client.v1.charges.retrieve(first.charge)
    assert charge.amount_refunded == 2000 and charge.refunded is False
    events = client.v1.events.list(params={"type": "charge.refunded"}).data
    assert events[0].data.object.amount_refunded == 2000

    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 3001})
    assert info.value.http_status == 400 and info.value.code == "amount_too_large"

    rest = client.v1.refunds.create(params={"payment_intent": intent_id})
    assert rest.amount == 3000
    assert client.v1.charges.retrieve(first.charge).refunded is True
    listed = client.v1.refunds.list(params={"payment_intent": intent_id})
    assert [r.id for r in listed.data] == [rest.id, first.id]


def test_refund_refuses_unknown_or_unpaid(client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"payment_intent": "pi_unknown"})
    assert info.value.http_status == 400 and info.value.code == "resource_missing"
    open_session = client.v1.checkout.sessions.create(params=session_params())
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"payment_intent": open_session.id})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={})
    assert info.value.http_status == 400
    intent_id = paid_intent(client)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"payment_intent": intent_id, "reason": "whim"})
    assert info.value.param == "reason"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.retrieve("re_unknown")


def test_refund_idempotent_replay(client):
    intent_id = paid_intent(client)
    options = {"idempotency_key": "refund-booking-42"}
    first = client.v1.refunds.create(params={"payment_intent": intent_id}, options=options)
    second = client.v1.refunds.create(params={"payment_intent": intent_id}, options=options)
    assert first.id == second.id
    assert len(client.v1.events.list(params={"type": "refund.created"}).data) == 1
