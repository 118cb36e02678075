"""The fake Stripe account keeps the rules of the calls for money that moves after a payment as the
sandbox does (tests/payments/test_gateway_later.py checks the real gateway against it): transfers at
most what is left of their charge and made once per key, reversals at most what is left, saved cards
whose off-session charge succeeds, is declined or requires action. No database: the fake alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.service.fake_gateway import FakeGateway
from tutorbook.payments.port import CheckoutNotFound, Refused, Transfer

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def paid_charge(fake: FakeGateway, amount: int = 9000) -> str:
    """A platform checkout paid in full: its charge id."""
    checkout = asyncio.run(
        fake.create_checkout(
            booking_id="purchase-1",
            amount=amount,
            currency="usd",
            product_name="10 lessons",
            customer_email=None,
            success_url="http://x/s",
            cancel_url="http://x/c",
            expires_at=NOW + timedelta(hours=1),
        )
    )
    fake.pay(checkout.id)
    payment = fake.payments[fake.sessions[checkout.id].payment_intent or ""]
    return payment.charge_id


def test_transfers_from_a_charge_add_up_to_at_most_what_is_left_and_happen_once_per_key():
    fake = FakeGateway(now=lambda: NOW)
    charge = paid_charge(fake)

    def transfer(amount: int, key: str) -> Transfer:
        return fake.create_transfer_sync(
            amount=amount,
            currency="usd",
            destination="acct_t",
            source_transaction=charge,
            transfer_group="purchase-1",
            idempotency_key=key,
        )

    first = transfer(6000, "b1")
    assert transfer(6000, "b1") == first
    with pytest.raises(Refused):
        transfer(3001, "b2")
    fake.reverse_transfer_sync(transfer_id=first.id, amount=1000, idempotency_key="undo-b1")
    assert transfer(4000, "b3").amount == 4000
    assert [t.amount_reversed for t in fake.transfers_to("acct_t")] == [1000, 0]
    assert [t.id for t in fake.list_transfers_sync(transfer_group="purchase-1")][-1] == first.id
    with pytest.raises(Refused):
        fake.reverse_transfer_sync(transfer_id=first.id, amount=5001, idempotency_key="undo-more")
    with pytest.raises(CheckoutNotFound):
        fake.reverse_transfer_sync(transfer_id="tr_missing", amount=1, idempotency_key="undo-x")
    assert [e["type"] for e in fake.events].count("transfer.created") == 2


def test_saved_cards_charged_off_session_answer_as_stripes_test_cards():
    fake = FakeGateway(now=lambda: NOW)
    customer = asyncio.run(fake.create_customer(parent_id="p1", email="pat@example.com"))
    assert asyncio.run(fake.create_customer(parent_id="p1", email="pat@example.com")) == customer
    good = fake.save_card(customer)
    failing = fake.save_card(customer, charge="declined", last4="0341")
    asking = fake.save_card(customer, charge="requires_action", last4="3184")
    assert [c.last4 for c in fake.list_payment_methods_sync(customer)] == ["3184", "0341", "4242"]

    def charge(method: str, key: str):
        return fake.charge_off_session_sync(
            customer=customer, payment_method=method, amount=4500, currency="usd", idempotency_key=key
        )

    ok = charge(good.id, "w2")
    assert ok.succeeded and charge(good.id, "w2") == ok
    assert fake.refund_sync(payment_intent=ok.payment_intent or "", amount=4500, refund_key="r", booking_id="b")
    assert (charge(failing.id, "w4").outcome, charge(failing.id, "w4").code) == ("declined", "card_declined")
    assert (charge(asking.id, "w6").outcome, charge(asking.id, "w6").code) == (
        "requires_action",
        "authentication_required",
    )
    with pytest.raises(Refused):
        fake.charge_off_session_sync(
            customer="cus_other", payment_method=good.id, amount=4500, currency="usd", idempotency_key="w7"
        )
