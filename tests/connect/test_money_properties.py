"""A property of Connect money, through the sandbox's money model and the product's money code:
for any price, platform fee percent and run of partial refunds (with reverse_transfer and
refund_application_fee, as the product sends them), teacher net + platform fee = paid −
refunded, and each account's balance transactions add up to its share."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stripe_sandbox import SandboxConfig
from stripe_sandbox.service import ApiCall, Card, Sandbox
from stripe_sandbox.store import Store
from tutorbook.bookings import earnings, policy
from tutorbook.bookings.models import Booking
from tutorbook.payments import gateway as gw
from tutorbook.payments import objects


@pytest.fixture(scope="module")
def money(tmp_path_factory) -> Sandbox:
    store = Store(str(tmp_path_factory.mktemp("money") / "sandbox.sqlite3"))
    yield Sandbox(SandboxConfig(webhook_url=None), store)
    store.close()


def call(sandbox: Sandbox, op, method: str, path: str, params: dict[str, Any], account: str | None = None, **kw):
    """One API call, run as the sandbox's app runs it (one transaction); its JSON answer."""
    c = ApiCall(
        method=method,
        path=path,
        params=params,
        fingerprint=uuid.uuid4().hex,
        request_id=uuid.uuid4().hex,
        idempotency_key=None,
        api_version="2026-10-28.endive",
        base_url="http://sandbox.test",
        stripe_account=account,
    )
    result = sandbox.execute(c, lambda c: op(c, **kw))
    body = json.loads(result.body)
    assert result.status == 200, body
    return body


def connected_account(sandbox: Sandbox) -> str:
    account = call(sandbox, sandbox.create_account, "POST", "/v1/accounts", {"type": "express", "country": "US"})
    sandbox.set_onboarded(account["id"], complete=True)
    return account["id"]


def paid(sandbox: Sandbox, *, amount: int, fee: int, destination: str) -> str:
    params = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {"currency": "usd", "unit_amount": str(amount), "product_data": {"name": "x"}},
                "quantity": "1",
            }
        ],
        "success_url": "http://app.test/ok",
        "payment_intent_data": {"transfer_data": {"destination": destination}, "application_fee_amount": str(fee)},
    }
    session = call(sandbox, sandbox.create_session, "POST", "/v1/checkout/sessions", params)
    session, _ = sandbox.pay(session["id"], Card("4242424242424242", 12, 2099, "Pat"))
    return session["payment_intent"]


def refund(sandbox: Sandbox, intent: str, amount: int, *, with_fee: bool) -> None:
    """As the product sends it (gateway.refund_sync): no refund_application_fee without a fee."""
    params = {"payment_intent": intent, "amount": str(amount), "reverse_transfer": "true"}
    if with_fee:
        params["refund_application_fee"] = "true"
    call(sandbox, sandbox.create_refund, "POST", "/v1/refunds", params)


def split(sandbox: Sandbox, intent: str) -> gw.PaymentSplit:
    """The product's reading of Stripe's answer (the gateway's own parsing)."""
    expand = {"expand": ["latest_charge.transfer", "latest_charge.application_fee"]}
    found = call(
        sandbox, sandbox.retrieve_payment_intent, "GET", f"/v1/payment_intents/{intent}", expand, intent_id=intent
    )
    refunds = call(sandbox, sandbox.list_refunds, "GET", "/v1/refunds", {"payment_intent": intent, "limit": "100"})
    result = objects.read_split(found, refunds["data"])
    assert result is not None
    return result


def booking_with(s: gw.PaymentSplit, *, price: int, fee: int, destination: str) -> Booking:
    """A booking as earnings.record_split leaves it (not stored: the money code reads fields)."""
    return Booking(
        price_amount=price, currency="usd", payout_destination=destination, platform_fee_amount=fee,
        stripe_transfer_id=s.transfer_id, stripe_application_fee_id=s.fee_id, transfer_amount=s.transfer_amount,
        transfer_reversed_amount=s.transfer_reversed, fee_refunded_amount=s.fee_refunded, refunded_amount=s.refunded,
    )  # fmt: skip


def balance_net(sandbox: Sandbox, account: str | None, sources: set[str]) -> int:
    total = 0
    for source in sources:
        params = {"limit": "100", "source": source}
        listed = call(sandbox, sandbox.list_balance_transactions, "GET", "/v1/balance_transactions", params, account)
        total += sum(t["net"] for t in listed["data"])
    return total


@st.composite
def payments(draw):
    price = draw(st.integers(min_value=50, max_value=2_000_000))
    percent = draw(st.sampled_from([0, 1, 2.5, 10, 12.5, 15, 17.5, 20, 33.3, 50, 99.9, 100]) | st.floats(0, 100))
    steps = draw(st.lists(st.integers(min_value=1, max_value=price), max_size=6))
    return price, percent, steps


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payments())
def test_teacher_net_plus_platform_fee_is_paid_less_refunded(money, case):
    price, percent, steps = case
    fee = policy.platform_fee(amount=price, percent=percent)
    account = connected_account(money)
    intent = paid(money, amount=price, fee=fee, destination=account)
    refunded = 0
    for step in steps:
        amount = min(step, price - refunded)
        if amount == 0:
            break
        refund(money, intent, amount, with_fee=fee > 0)
        refunded += amount
        s = split(money, intent)
        e = earnings.earning(booking_with(s, price=price, fee=fee, destination=account))
        assert (s.transfer_amount, s.transfer_reversed, s.refunded) == (price, refunded, refunded)
        assert e.net + e.fee == price - refunded
        assert 0 <= e.fee <= fee and 0 <= e.net <= price - fee
        assert s.fee_refunded == (fee if refunded == price else (2 * fee * refunded + price) // (2 * price))
    s = split(money, intent)
    e = earnings.earning(booking_with(s, price=price, fee=fee, destination=account))
    assert e.net + e.fee == price - refunded
    # Each account's balance transactions add up to its share; together, paid - refunded.
    assert balance_net(money, None, _platform_sources(money, s, intent)) == e.fee
    assert sum(t["net"] for t in _all(money, account)) == e.net


def _platform_sources(sandbox: Sandbox, s: gw.PaymentSplit, intent: str) -> set[str]:
    refunds = call(sandbox, sandbox.list_refunds, "GET", "/v1/refunds", {"payment_intent": intent, "limit": "100"})
    sources = {s.charge_id, s.transfer_id, s.fee_id} | {r["id"] for r in refunds["data"]}
    sources |= {r["transfer_reversal"] for r in refunds["data"] if r.get("transfer_reversal")}
    if s.fee_id:
        fee = call(
            sandbox,
            sandbox.list_fee_refunds,
            "GET",
            f"/v1/application_fees/{s.fee_id}/refunds",
            {"limit": "100"},
            fee_id=s.fee_id,
        )
        sources |= {r["id"] for r in fee["data"]}
    return {x for x in sources if x}


def _all(sandbox: Sandbox, account: str) -> list[dict]:
    listed = call(
        sandbox, sandbox.list_balance_transactions, "GET", "/v1/balance_transactions", {"limit": "100"}, account
    )
    return listed["data"]
