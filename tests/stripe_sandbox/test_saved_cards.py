"""Customers, saved cards and off-session PaymentIntents in the sandbox, through the real SDK, with
Stripe's documented test cards: 4242 succeeds, 0341 attaches but every charge is declined, 3184
always requires authentication."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from .helpers import raw_get, session_params, submit_card


def customer(client, email: str = "pat@example.com") -> Any:
    return client.v1.customers.create(params={"email": email, "name": "Pat Parent", "metadata": {"parent_id": "p1"}})


def save_by_checkout(client, customer_id: str, number: str = "4242 4242 4242 4242", **intent_data: Any) -> dict:
    """Pay a checkout for the customer, the card saved for later; the paid session."""
    params = session_params(
        customer=customer_id,
        payment_intent_data={"setup_future_usage": "off_session", "metadata": {"booking_id": "w1"}, **intent_data},
    )
    del params["customer_email"]  # Stripe takes one of customer, customer_email
    session = client.v1.checkout.sessions.create(params=params)
    assert session.customer == customer_id
    assert submit_card(session.url, number).status_code == 303
    return client.v1.checkout.sessions.retrieve(session.id).to_dict()


def charge_off_session(client, customer_id: str, method: str, key: str | None = None, **extra: Any) -> Any:
    params = {
        "amount": 4500,
        "currency": "usd",
        "customer": customer_id,
        "payment_method": method,
        "off_session": True,
        "confirm": True,
        "metadata": {"booking_id": "w2"},
        **extra,
    }
    options: Any = {"idempotency_key": key} if key else {}
    return client.v1.payment_intents.create(params=params, options=options)


def event_types(client) -> list[str]:
    return [e.type for e in client.v1.events.list(params={"limit": 100}).data]


def test_customers_are_created_retrieved_and_listed_by_email(client):
    pat = customer(client)
    assert pat.id.startswith("cus_") and (pat.email, pat.name, pat.metadata["parent_id"]) == (
        "pat@example.com",
        "Pat Parent",
        "p1",
    )
    customer(client, "sam@example.com")
    assert client.v1.customers.retrieve(pat.id).email == "pat@example.com"
    assert [c.id for c in client.v1.customers.list(params={"email": "pat@example.com"}).data] == [pat.id]
    assert len(client.v1.customers.list().data) == 2
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.customers.retrieve("cus_missing")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.InvalidRequestError) as bad:
        client.v1.customers.create(params={"email": "not-an-email"})
    assert bad.value.code == "email_invalid"


def test_a_checkout_with_setup_future_usage_saves_the_card_to_the_customer(client, sandbox):
    pat = customer(client)
    session = save_by_checkout(client, pat.id)
    intent = raw_get(sandbox, f"/v1/payment_intents/{session['payment_intent']}?expand[]=latest_charge")
    [card] = client.v1.payment_methods.list(params={"customer": pat.id, "type": "card"}).data
    assert (card.customer, card.type, card.card.last4, card.card.brand) == (pat.id, "card", "4242", "visa")
    assert (intent["customer"], intent["payment_method"], intent["setup_future_usage"]) == (
        pat.id,
        card.id,
        "off_session",
    )
    assert intent["latest_charge"]["customer"] == pat.id and session["customer_details"]["email"] == pat.email
    assert client.v1.payment_methods.retrieve(card.id).card.fingerprint == card.card.fingerprint
    # Paid without setup_future_usage, nothing is saved.
    params = session_params(customer=pat.id)
    del params["customer_email"]
    other = client.v1.checkout.sessions.create(params=params)
    assert submit_card(other.url).status_code == 303
    assert len(client.v1.payment_methods.list(params={"customer": pat.id}).data) == 1
    assert client.v1.payment_methods.list(params={"customer": pat.id, "type": "sepa_debit"}).data == []


def test_a_checkout_refuses_an_unknown_customer_and_a_customer_with_an_email(client):
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.checkout.sessions.create(params=session_params(customer="cus_missing"))
    assert (missing.value.http_status, missing.value.code, missing.value.param) == (400, "resource_missing", "customer")
    with pytest.raises(stripe.InvalidRequestError) as both:
        client.v1.checkout.sessions.create(params=session_params(customer=customer(client).id))
    assert both.value.param == "customer_email"


def test_an_off_session_charge_of_a_saved_4242_succeeds_and_is_refundable(client, sandbox):
    pat = customer(client)
    save_by_checkout(client, pat.id)
    [card] = client.v1.payment_methods.list(params={"customer": pat.id}).data
    intent = charge_off_session(client, pat.id, card.id, key="series-1-week-2")
    assert (intent.status, intent.amount_received, intent.customer, intent.payment_method) == (
        "succeeded",
        4500,
        pat.id,
        card.id,
    )
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.status, charge.paid, charge.amount, charge.customer) == ("succeeded", True, 4500, pat.id)
    assert charge_off_session(client, pat.id, card.id, key="series-1-week-2").id == intent.id  # replayed
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 2000})
    assert (refund.amount, refund.charge) == (2000, charge.id)
    types = event_types(client)
    assert types.count("payment_intent.succeeded") == 1 and "charge.succeeded" in types
    assert [e.data.object.id for e in client.v1.events.list(params={"type": "payment_intent.succeeded"}).data] == [
        intent.id
    ]


def test_a_card_that_attaches_but_fails_is_declined_when_charged(client, sandbox):
    pat = customer(client)
    card = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": pat.id})
    assert (card.customer, card.card.last4) == (pat.id, "0341") and card.id.startswith("pm_")
    with pytest.raises(stripe.CardError) as declined:
        charge_off_session(client, pat.id, card.id, key="week-4")
    err = declined.value
    assert (err.http_status, err.code, err.error.decline_code) == (402, "card_declined", "generic_decline")
    assert err.user_message == "Your card was declined."
    intent = err.error.payment_intent
    assert (intent.status, intent.last_payment_error.code, intent.payment_method) == (
        "requires_payment_method",
        "card_declined",
        None,
    )
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"
    failed = client.v1.charges.retrieve(err.error.charge)
    assert (failed.status, failed.paid, failed.failure_code) == ("failed", False, "card_declined")
    # The same key answers the same 402 for the same intent, with no second attempt.
    with pytest.raises(stripe.CardError) as again:
        charge_off_session(client, pat.id, card.id, key="week-4")
    assert again.value.error.payment_intent.id == intent.id
    assert event_types(client).count("payment_intent.payment_failed") == 1
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"payment_intent": intent.id})
    # The hosted page (the payment is a charge) declines the card too.
    params = session_params()
    session = client.v1.checkout.sessions.create(params=params)
    assert submit_card(session.url, "4000 0000 0000 0341").status_code == 402


def test_a_card_that_always_needs_authentication_fails_off_session_and_asks_on_session(client, sandbox):
    pat = customer(client)
    save_by_checkout(client, pat.id, "4000 0027 6000 3184")  # the payer authenticates on the page
    [card] = client.v1.payment_methods.list(params={"customer": pat.id}).data
    assert card.card.last4 == "3184"
    with pytest.raises(stripe.CardError) as needs:
        charge_off_session(client, pat.id, card.id)
    err = needs.value
    assert (err.http_status, err.code, err.error.decline_code) == (
        402,
        "authentication_required",
        "authentication_required",
    )
    assert err.error.payment_intent.status == "requires_payment_method"
    assert err.error.payment_intent.last_payment_error.code == "authentication_required"
    on_session = client.v1.payment_intents.create(
        params={"amount": 4500, "currency": "usd", "customer": pat.id, "payment_method": card.id, "confirm": True}
    )
    assert (on_session.status, on_session.next_action.type) == ("requires_action", "use_stripe_sdk")
    types = event_types(client)
    assert "payment_intent.requires_action" in types and types.count("payment_intent.payment_failed") == 1


def test_a_detached_card_cannot_be_charged_and_others_cards_are_refused(client):
    pat, sam = customer(client), customer(client, "sam@example.com")
    card = client.v1.payment_methods.attach("pm_card_visa", params={"customer": pat.id})
    with pytest.raises(stripe.InvalidRequestError) as not_hers:
        charge_off_session(client, sam.id, card.id)
    assert not_hers.value.param == "payment_method"
    with pytest.raises(stripe.InvalidRequestError) as no_customer:
        client.v1.payment_intents.create(
            params={"amount": 4500, "currency": "usd", "payment_method": card.id, "confirm": True}
        )
    assert no_customer.value.param == "payment_method"
    with pytest.raises(stripe.InvalidRequestError) as unconfirmed:
        charge_off_session(client, pat.id, card.id, confirm=False)
    assert unconfirmed.value.param == "off_session"
    with pytest.raises(stripe.InvalidRequestError) as small:
        charge_off_session(client, pat.id, card.id, amount=49)
    assert (small.value.code, small.value.param) == ("amount_too_small", "amount")
    detached = client.v1.payment_methods.detach(card.id)
    assert detached.customer is None
    assert client.v1.payment_methods.list(params={"customer": pat.id}).data == []
    with pytest.raises(stripe.InvalidRequestError) as gone:
        charge_off_session(client, pat.id, card.id)
    assert gone.value.param == "payment_method"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_methods.detach(card.id)
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.payment_methods.retrieve("pm_missing")
    assert unknown.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as unknown_customer:
        client.v1.payment_methods.list(params={"customer": "cus_missing"})
    assert unknown_customer.value.code == "resource_missing"


def test_an_unconfirmed_intent_waits_for_its_payment_method(client):
    pat = customer(client)
    intent = client.v1.payment_intents.create(params={"amount": 4500, "currency": "usd", "customer": pat.id})
    assert (intent.status, intent.latest_charge, intent.amount_received) == ("requires_payment_method", None, 0)
    assert event_types(client) == ["payment_intent.created"]
