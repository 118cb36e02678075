"""The gateway's calls for money that moves after a payment (payments/later.py), against the
sandbox through the real SDK: transfers funded by a platform charge and their reversals, a
parent's Stripe Customer, saved cards and off-session charges with Stripe's test cards."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.support import payments as pay
from tests.support.servers import http_post
from tutorbook.payments import gateway as gw


def teacher_account(sdk) -> str:
    account = sdk.v1.accounts.create(
        params={"type": "express", "country": "US", "capabilities": {"transfers": {"requested": True}}}
    )
    link = sdk.v1.account_links.create(
        params={
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": "http://127.0.0.1:9/r",
            "return_url": "http://127.0.0.1:9/ok",
        }
    )
    assert http_post(link.url, data={"choice": "complete"}, follow_redirects=False).status_code == 303
    return account.id


def paid_checkout(sdk, sandbox, *, amount: int, group: str | None = None, customer: str | None = None) -> dict:
    """A checkout charged to the platform and paid with 4242: the session (payment intent expanded
    with its charge)."""
    intent_data: dict[str, Any] = {"metadata": {"purchase_id": "p"}}
    if group:
        intent_data["transfer_group"] = group
    if customer:
        intent_data["setup_future_usage"] = "off_session"
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {"price_data": {"currency": "usd", "unit_amount": amount, "product_data": {"name": "x"}}, "quantity": 1}
        ],
        "success_url": "http://127.0.0.1:9/payment/success?session_id={CHECKOUT_SESSION_ID}",
        "payment_intent_data": intent_data,
    }
    if customer:
        params["customer"] = customer
    session = sdk.v1.checkout.sessions.create(params=params)
    assert pay.pay(session.url).status_code == 303
    return sdk.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent.latest_charge"]}).to_dict()


def test_a_lessons_transfer_is_made_once_from_the_purchases_charge_and_can_be_reversed(gateway, sdk, sandbox):
    account = teacher_account(sdk)
    group = f"purchase-{uuid.uuid4()}"
    intent = paid_checkout(sdk, sandbox, amount=12000, group=group)["payment_intent"]
    charge = intent["latest_charge"]
    split = gateway.payment_split_sync(intent["id"])
    assert split is not None and (split.amount, split.refunded, split.charge_id) == (12000, 0, charge["id"])
    ask = dict(currency="usd", destination=account, source_transaction=charge["id"], transfer_group=group)
    first = gateway.create_transfer_sync(
        amount=3400, idempotency_key=f"{group}-b1", metadata={"booking_id": "b1"}, **ask
    )
    assert (first.amount, first.destination, first.source_transaction, first.transfer_group) == (
        3400,
        account,
        charge["id"],
        group,
    )
    assert first.metadata == {"booking_id": "b1"}
    again = gateway.create_transfer_sync(
        amount=3400, idempotency_key=f"{group}-b1", metadata={"booking_id": "b1"}, **ask
    )
    assert again.id == first.id
    second = gateway.create_transfer_sync(amount=3400, idempotency_key=f"{group}-b2", **ask)
    assert {t.id for t in gateway.list_transfers_sync(transfer_group=group)} == {first.id, second.id}
    with pytest.raises(gw.Refused, match="left of the charge"):
        gateway.create_transfer_sync(amount=5201, idempotency_key=f"{group}-b3", **ask)
    back = gateway.reverse_transfer_sync(transfer_id=second.id, amount=1000, idempotency_key=f"{group}-undo-b2")
    assert (back.transfer_id, back.amount) == (second.id, 1000)
    listed = {t.id: t.amount_reversed for t in gateway.list_transfers_sync(transfer_group=group)}
    assert listed == {first.id: 0, second.id: 1000}
    with pytest.raises(gw.Refused):
        gateway.reverse_transfer_sync(transfer_id=second.id, amount=2401, idempotency_key=f"{group}-undo-more")
    with pytest.raises(gw.Refused):
        gateway.create_transfer_sync(
            amount=100, idempotency_key=f"{group}-x", **{**ask, "source_transaction": "ch_missing"}
        )
    assert gateway.list_transfers_sync(transfer_group="purchase-none") == []


def test_saved_cards_charged_off_session_succeed_decline_or_require_action(gateway, sdk, sandbox):
    parent = str(uuid.uuid4())

    async def customer() -> tuple[str, str]:
        try:
            first = await gateway.create_customer(parent_id=parent, email="pat@example.com", name="Pat")
            again = await gateway.create_customer(parent_id=parent, email="pat@example.com", name="Pat")
            return first, again
        finally:
            await gateway.aclose()

    customer_id, again = asyncio.run(customer())
    assert customer_id.startswith("cus_") and again == customer_id
    paid_checkout(sdk, sandbox, amount=4500, customer=customer_id)  # 4242, saved
    failing = sdk.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer_id})
    asking = sdk.v1.payment_methods.attach("pm_card_authenticationRequired", params={"customer": customer_id})
    cards = gateway.list_payment_methods_sync(customer_id)
    assert {c.last4 for c in cards} == {"4242", "0341", "3184"} and {c.customer for c in cards} == {customer_id}
    good = next(c for c in cards if c.last4 == "4242")

    def charge(method: str, key: str) -> gw.OffSessionCharge:
        return gateway.charge_off_session_sync(
            customer=customer_id,
            payment_method=method,
            amount=4500,
            currency="usd",
            idempotency_key=key,
            metadata={"booking_id": key},
        )

    ok = charge(good.id, f"{parent}-week-2")
    assert (ok.outcome, ok.succeeded, ok.amount, ok.currency) == ("succeeded", True, 4500, "usd")
    assert ok.payment_intent and ok.charge_id and ok.code is None
    assert charge(good.id, f"{parent}-week-2").payment_intent == ok.payment_intent  # once per key
    declined = charge(failing.id, f"{parent}-week-4")
    assert (declined.outcome, declined.code, declined.decline_code) == ("declined", "card_declined", "generic_decline")
    assert declined.payment_intent and declined.message == "Your card was declined."
    needs = charge(asking.id, f"{parent}-week-6")
    assert (needs.outcome, needs.code) == ("requires_action", "authentication_required")
    intent = sdk.v1.payment_intents.retrieve(needs.payment_intent)
    assert intent.status == "requires_payment_method"
    refund = gateway.refund_sync(
        payment_intent=ok.payment_intent, amount=4500, refund_key=f"{parent}-r", booking_id="b"
    )
    assert refund.amount == 4500
    with pytest.raises(gw.Refused):
        charge("pm_missing", f"{parent}-week-7")
