"""Separate charges and transfers in the sandbox, through the real SDK: a transfer funded by a
platform charge (`source_transaction`) in a `transfer_group`, Stripe's refusals, reversals."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from .helpers import raw_get, session_params, submit_card
from .test_connect import balance, make_account, onboard


def platform_charge(client, sandbox, *, amount: int = 9000, group: str = "purchase-7", currency: str = "usd") -> dict:
    """A paid Checkout Session charged to the platform (no destination) in `group`: its charge."""
    params = session_params(payment_intent_data={"metadata": {"purchase_id": "7"}, "transfer_group": group})
    params["line_items"][0]["price_data"].update(unit_amount=amount, currency=currency)
    session = client.v1.checkout.sessions.create(params=params)
    assert submit_card(session.url).status_code == 303
    paid = raw_get(sandbox, f"/v1/checkout/sessions/{session.id}")
    return raw_get(sandbox, f"/v1/payment_intents/{paid['payment_intent']}?expand[]=latest_charge")["latest_charge"]


def teacher(client) -> str:
    account = make_account(client)
    onboard(client, account.id)
    return account.id


def transfer(client, charge: dict, destination: str, amount: int, **extra: Any) -> Any:
    params = {
        "amount": amount,
        "currency": charge["currency"],
        "destination": destination,
        "source_transaction": charge["id"],
        "transfer_group": charge["transfer_group"],
        **extra,
    }
    return client.v1.transfers.create(params=params)


def test_a_transfer_from_a_charge_pays_the_teacher_in_the_charges_group(client, sandbox):
    account = teacher(client)
    charge = platform_charge(client, sandbox)
    assert charge["transfer_group"] == "purchase-7" and charge["transfer"] is None
    done = transfer(client, charge, account, 2550, metadata={"booking_id": "b1"})
    assert (done.amount, done.currency, done.destination) == (2550, "usd", account)
    assert (done.source_transaction, done.transfer_group, done.metadata["booking_id"]) == (
        charge["id"],
        "purchase-7",
        "b1",
    )
    assert (done.amount_reversed, done.reversed) == (0, False)
    # Listed by group and by destination; the other teacher sees nothing.
    other = teacher(client)
    transfer(client, charge, other, 1000)
    by_group = client.v1.transfers.list(params={"transfer_group": "purchase-7"}).data
    assert sorted(t.amount for t in by_group) == [1000, 2550]
    assert [t.id for t in client.v1.transfers.list(params={"destination": account}).data] == [done.id]
    assert client.v1.transfers.list(params={"transfer_group": "purchase-8"}).data == []
    # The money: out of the platform's balance, into the teacher's.
    assert {t["source"]: t["amount"] for t in balance(sandbox, type="transfer")}[done.id] == -2550
    [payment] = [t for t in balance(sandbox, account) if t["source"] == done.destination_payment]
    assert (payment["type"], payment["amount"], payment["net"]) == ("payment", 2550, 2550)
    created = client.v1.events.list(params={"type": "transfer.created"}).data
    assert {e.data.object.id for e in created} >= {done.id}


def test_transfers_from_a_charge_add_up_to_at_most_what_is_left_of_it(client, sandbox):
    account = teacher(client)
    charge = platform_charge(client, sandbox, amount=9000)
    first = transfer(client, charge, account, 3000)
    client.v1.refunds.create(params={"payment_intent": charge["payment_intent"], "amount": 3000})
    # 9,000 - 3,000 refunded - 3,000 transferred: 3,000 left.
    with pytest.raises(stripe.InvalidRequestError) as refused:
        transfer(client, charge, account, 3001)
    assert (refused.value.http_status, refused.value.code, refused.value.param) == (
        400,
        "balance_insufficient",
        "amount",
    )
    assert "30.00" in str(refused.value)
    # A refund of the charge leaves a separate transfer alone; reversing it frees its money again.
    assert client.v1.transfers.retrieve(first.id).amount_reversed == 0
    client.v1.transfers.reversals.create(first.id, params={"amount": 1000})
    assert transfer(client, charge, account, 4000).amount == 4000
    with pytest.raises(stripe.InvalidRequestError):
        transfer(client, charge, account, 1)


def test_a_transfer_is_refused_as_stripe_refuses_it(client, sandbox):
    account = teacher(client)
    charge = platform_charge(client, sandbox)
    cases: list[tuple[dict[str, Any], str | None, str]] = [
        ({"currency": "eur"}, None, "currency"),
        ({"source_transaction": "ch_missing"}, "resource_missing", "source_transaction"),
        ({"destination": "acct_missing"}, "resource_missing", "destination"),
        ({"destination": make_account(client).id}, "insufficient_capabilities_for_transfer", "destination"),
        ({"amount": 0}, None, "amount"),
    ]
    for change, code, param in cases:
        params = {
            "amount": 100,
            "currency": "usd",
            "destination": account,
            "source_transaction": charge["id"],
            **change,
        }
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.transfers.create(params=params)
        assert (refused.value.http_status, refused.value.code, refused.value.param) == (400, code, param), change
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.transfers.create(params={"currency": "usd", "destination": account})
    assert (missing.value.code, missing.value.param) == ("parameter_missing", "amount")
    assert client.v1.transfers.list(params={"destination": account}).data == []


def test_a_transfer_without_a_source_is_paid_from_the_platforms_balance(client, sandbox):
    account = teacher(client)
    platform_charge(client, sandbox, amount=5000)
    params = {"amount": 5001, "currency": "usd", "destination": account}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.transfers.create(params=params)
    assert refused.value.code == "balance_insufficient"
    assert client.v1.transfers.create(params={**params, "amount": 5000}).source_transaction is None


def test_the_same_idempotency_key_makes_one_transfer(client, sandbox):
    account = teacher(client)
    charge = platform_charge(client, sandbox)
    params = {"amount": 1500, "currency": "usd", "destination": account, "source_transaction": charge["id"]}
    first = client.v1.transfers.create(params=params, options={"idempotency_key": "lesson-b1"})
    again = client.v1.transfers.create(params=params, options={"idempotency_key": "lesson-b1"})
    assert first.id == again.id
    assert len(client.v1.transfers.list(params={"destination": account}).data) == 1
    with pytest.raises(stripe.IdempotencyError):
        client.v1.transfers.create(params={**params, "amount": 1600}, options={"idempotency_key": "lesson-b1"})


def test_reversals_take_back_part_then_the_rest_and_no_more(client, sandbox):
    account = teacher(client)
    charge = platform_charge(client, sandbox)
    done = transfer(client, charge, account, 3000)
    part = client.v1.transfers.reversals.create(done.id, params={"amount": 1200, "metadata": {"why": "refund"}})
    assert (part.amount, part.transfer, part.source_refund, part.metadata["why"]) == (1200, done.id, None, "refund")
    now = client.v1.transfers.retrieve(done.id)
    assert (now.amount_reversed, now.reversed) == (1200, False)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.transfers.reversals.create(done.id, params={"amount": 1801})
    assert refused.value.param == "amount"
    rest = client.v1.transfers.reversals.create(done.id)
    assert rest.amount == 1800
    now = client.v1.transfers.retrieve(done.id)
    assert (now.amount_reversed, now.reversed) == (3000, True)
    assert [r.amount for r in client.v1.transfers.reversals.list(done.id).data] == [1800, 1200]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.reversals.create(done.id, params={"amount": 1})
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.transfers.reversals.create("tr_missing")
    assert (unknown.value.http_status, unknown.value.code) == (404, "resource_missing")
    reversed_events = client.v1.events.list(params={"type": "transfer.reversed"}).data
    assert [e.data.previous_attributes.amount_reversed for e in reversed_events] == [1200, 0]
    # The teacher's balance: +3,000, -1,200, -1,800.
    mine = [t["amount"] for t in balance(sandbox, account)]
    assert sorted(mine) == [-1800, -1200, 3000]
