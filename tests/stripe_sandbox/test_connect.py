"""Stripe Connect in the sandbox, through the real SDK: Express accounts and hosted onboarding,
destination charges with their transfer and application fee, refunds that reverse both pro rata."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from .helpers import http, raw_get, session_params, submit_card

RETURN = "http://app.test/teacher/payouts?returned=1"
REFRESH = "http://app.test/teacher/payouts?refresh=1"


def make_account(client: stripe.StripeClient) -> Any:
    return client.v1.accounts.create(
        params={
            "type": "express",
            "country": "US",
            "email": "ada@example.com",
            "capabilities": {"card_payments": {"requested": True}, "transfers": {"requested": True}},
        }
    )


def onboard(client: stripe.StripeClient, account_id: str, choice: str = "complete") -> Any:
    link = client.v1.account_links.create(
        params={"account": account_id, "type": "account_onboarding", "refresh_url": REFRESH, "return_url": RETURN}
    )
    page = http.get(link.url)
    assert page.status_code == 200 and account_id in page.text
    answer = http.post(link.url, data={"choice": choice}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == RETURN
    return link


def paid_destination_charge(client, sandbox, account_id: str, amount: int = 5000, fee: int = 750) -> dict:
    params = session_params(
        payment_intent_data={
            "metadata": {"booking_id": "42"},
            "transfer_data": {"destination": account_id},
            "application_fee_amount": fee,
        }
    )
    params["line_items"][0]["price_data"]["unit_amount"] = amount
    session = client.v1.checkout.sessions.create(params=params)
    assert submit_card(session.url).status_code == 303
    paid = raw_get(sandbox, f"/v1/checkout/sessions/{session.id}")
    return raw_get(sandbox, f"/v1/payment_intents/{paid['payment_intent']}?expand[]=latest_charge")


def test_onboarding_enables_the_account_and_a_used_link_sends_to_refresh(client, sandbox):
    account = make_account(client)
    assert (account.charges_enabled, account.payouts_enabled, account.details_submitted) == (False, False, False)
    assert "external_account" in account.requirements.currently_due
    link = onboard(client, account.id)
    again = http.get(link.url, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == REFRESH
    now = client.v1.accounts.retrieve(account.id)
    assert (now.charges_enabled, now.payouts_enabled, now.details_submitted) == (True, True, True)
    assert now.requirements.currently_due == []
    events = client.v1.events.list(params={"type": "account.updated"})
    assert [e.data.object.id for e in events.data] == [account.id]
    assert events.data[0].account == account.id
    assert events.data[0].data.previous_attributes["payouts_enabled"] is False


def test_finish_later_leaves_payouts_disabled(client, sandbox):
    account = make_account(client)
    onboard(client, account.id, choice="later")
    now = client.v1.accounts.retrieve(account.id)
    assert (now.charges_enabled, now.payouts_enabled) == (True, False)
    assert now.requirements.currently_due == ["external_account"]


def test_a_destination_charge_creates_its_transfer_and_fee(client, sandbox):
    account = make_account(client)
    onboard(client, account.id)
    intent = paid_destination_charge(client, sandbox, account.id)
    charge = intent["latest_charge"]
    assert intent["transfer_data"]["destination"] == account.id
    assert intent["application_fee_amount"] == 750
    transfer = client.v1.transfers.retrieve(charge["transfer"])
    fee = client.v1.application_fees.retrieve(charge["application_fee"])
    assert (transfer.amount, transfer.destination, transfer.source_transaction) == (4250, account.id, charge["id"])
    assert (fee.amount, fee.account, fee.charge) == (750, account.id, charge["id"])
    txn = raw_get(sandbox, f"/v1/balance_transactions/{charge['balance_transaction']}")
    assert (txn["amount"], txn["type"], txn["source"]) == (5000, "charge", charge["id"])
    types = {e.type for e in client.v1.events.list().data}
    assert {"transfer.created", "application_fee.created", "checkout.session.completed"} <= types


def test_a_destination_needs_an_account_with_transfers_active(client, sandbox):
    account = make_account(client)  # not onboarded
    params = session_params(payment_intent_data={"transfer_data": {"destination": account.id}})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.checkout.sessions.create(params=params)
    assert refused.value.code == "insufficient_capabilities_for_transfer"
    params = session_params(payment_intent_data={"transfer_data": {"destination": "acct_missing"}})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.create(params=params)


def test_refunds_reverse_the_transfer_and_refund_the_fee_pro_rata(client, sandbox):
    account = make_account(client)
    onboard(client, account.id)
    intent = paid_destination_charge(client, sandbox, account.id, amount=5001, fee=751)
    charge = intent["latest_charge"]
    flags = {"reverse_transfer": True, "refund_application_fee": True}
    first = client.v1.refunds.create(
        params={"payment_intent": intent["id"], "amount": 1001, **flags}, options={"idempotency_key": "r1"}
    )
    transfer = client.v1.transfers.retrieve(charge["transfer"])
    fee = client.v1.application_fees.retrieve(charge["application_fee"])
    # 4250 x 1001 / 5001 = 850.7 -> 851 reversed; the fee gives back the rest: 150.
    assert (transfer.amount_reversed, fee.amount_refunded) == (851, 150)
    reversal = raw_get(sandbox, f"/v1/refunds/{first.id}?expand[]=transfer_reversal")["transfer_reversal"]
    assert (reversal["amount"], reversal["source_refund"], reversal["transfer"]) == (851, first.id, transfer.id)
    client.v1.refunds.create(params={"payment_intent": intent["id"], **flags})
    transfer = client.v1.transfers.retrieve(charge["transfer"])
    fee = client.v1.application_fees.retrieve(charge["application_fee"])
    assert (transfer.amount_reversed, transfer.reversed) == (4250, True)
    assert (fee.amount_refunded, fee.refunded) == (751, True)
    assert len(client.v1.transfers.reversals.list(transfer.id).data) == 2
    assert sum(r.amount for r in client.v1.application_fees.refunds.list(fee.id).data) == 751
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert types.count("transfer.reversed") == 2 and types.count("application_fee.refunded") == 2


def test_a_refund_without_the_flags_leaves_the_teacher_paid(client, sandbox):
    account = make_account(client)
    onboard(client, account.id)
    intent = paid_destination_charge(client, sandbox, account.id)
    client.v1.refunds.create(params={"payment_intent": intent["id"], "amount": 1000})
    transfer = client.v1.transfers.retrieve(intent["latest_charge"]["transfer"])
    assert transfer.amount_reversed == 0
