"""Stripe Connect in the sandbox, through the real SDK: Express accounts and hosted onboarding,
destination charges with their transfer and application fee, refunds that reverse both pro rata."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from stripe_sandbox.destinations import proportional

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
    # The whole amount is transferred; the fee is then taken from the connected account.
    assert (transfer.amount, transfer.destination, transfer.source_transaction) == (5000, account.id, charge["id"])
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
    # The transfer (the whole 5001) is reversed by the refunded amount; the fee in proportion:
    # 751 x 1001 / 5001 = 150.3 -> 150.
    assert (transfer.amount_reversed, fee.amount_refunded) == (1001, 150)
    reversal = raw_get(sandbox, f"/v1/refunds/{first.id}?expand[]=transfer_reversal")["transfer_reversal"]
    assert (reversal["amount"], reversal["source_refund"], reversal["transfer"]) == (1001, first.id, transfer.id)
    client.v1.refunds.create(params={"payment_intent": intent["id"], **flags})
    transfer = client.v1.transfers.retrieve(charge["transfer"])
    fee = client.v1.application_fees.retrieve(charge["application_fee"])
    assert (transfer.amount_reversed, transfer.reversed) == (5001, True)
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


def balance(sandbox, account: str | None = None, **filters) -> list[dict]:
    headers = {"Stripe-Account": account} if account else {}
    query = "&".join(f"{k}={v}" for k, v in {"limit": 100, **filters}.items())
    r = http.get(
        f"{sandbox.base_url}/v1/balance_transactions?{query}",
        headers={"Authorization": "Bearer sk_test_sandbox", **headers},
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_balance_transactions_add_up_on_the_platform_and_the_connected_account(client, sandbox):
    account = make_account(client)
    onboard(client, account.id)
    intent = paid_destination_charge(client, sandbox, account.id, amount=4500, fee=675)
    flags = {"reverse_transfer": True, "refund_application_fee": True}
    client.v1.refunds.create(params={"payment_intent": intent["id"], "amount": 1000, **flags})
    platform, teacher = balance(sandbox), balance(sandbox, account.id)
    by_type = {t["type"]: t["amount"] for t in platform}
    # charge +4500, transfer -4500, fee +675, refund -1000, reversal +1000, fee refund -150
    assert by_type == {
        "charge": 4500,
        "transfer": -4500,
        "application_fee": 675,
        "refund": -1000,
        "transfer_refund": 1000,
        "application_fee_refund": -150,
    }
    assert sum(t["net"] for t in platform) == 675 - 150
    [payment] = [t for t in teacher if t["type"] == "payment"]
    assert (payment["amount"], payment["fee"], payment["net"]) == (4500, 675, 3825)
    assert payment["fee_details"][0]["type"] == "application_fee"
    # The teacher keeps 4500 - 675 - 1000 + 150; both together: paid - refunded.
    assert sum(t["net"] for t in teacher) == 2975
    assert sum(t["net"] for t in platform) + sum(t["net"] for t in teacher) == 4500 - 1000
    refund_txn = [t for t in platform if t["type"] == "refund"][0]
    assert balance(sandbox, type="refund")[0]["id"] == refund_txn["id"]
    # One account's balance transaction is not another's.
    r = http.get(
        f"{sandbox.base_url}/v1/balance_transactions/{payment['id']}",
        headers={"Authorization": "Bearer sk_test_sandbox"},
    )
    assert r.status_code == 404


def test_reverse_transfer_and_refund_application_fee_need_a_transfer_and_a_fee(client, sandbox):
    session = client.v1.checkout.sessions.create(params=session_params())
    assert submit_card(session.url).status_code == 303
    intent = raw_get(sandbox, f"/v1/checkout/sessions/{session.id}")["payment_intent"]
    for flag in ("reverse_transfer", "refund_application_fee"):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.refunds.create(params={"payment_intent": intent, "amount": 100, flag: True})
        assert refused.value.param == flag
    assert client.v1.refunds.create(params={"payment_intent": intent, "amount": 100}).amount == 100


@pytest.mark.parametrize("amount", [50, 51, 99, 100, 333, 1001, 4999, 5001, 99_999, 999_999])
def test_proportional_returns_are_totals_rounded_half_up_and_all_at_the_end(amount):
    for fee in sorted({0, 1, amount // 7, amount // 2, amount}):
        back, refunded = 0, 0
        for step in (1, amount // 3, 7, amount // 5, amount):
            refunded = min(amount, refunded + max(step, 1))
            total = proportional(fee, refunded, amount)
            assert total >= back  # never takes back what was returned
            assert total == (fee if refunded == amount else min(fee, (2 * fee * refunded + amount) // (2 * amount)))
            back = total
        assert back == fee
