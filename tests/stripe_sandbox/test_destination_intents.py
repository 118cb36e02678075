"""Off-session PaymentIntents as destination charges (`transfer_data[destination]`,
`application_fee_amount`), through the real SDK: split exactly as a Checkout's destination charge
(the whole amount transferred, the fee taken from it, the balance transactions, the events), its
refunds reversing the transfer and refunding the fee pro rata, and Stripe's refusals before
anything is charged."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from .helpers import raw_get
from .test_connect import balance, make_account, onboard
from .test_saved_cards import charge_off_session, customer, event_types


def saved_card(client, number: str = "pm_card_visa") -> tuple[str, str]:
    pat = customer(client)
    card = client.v1.payment_methods.attach(number, params={"customer": pat.id})
    return pat.id, card.id


def teacher(client) -> str:
    account = make_account(client)
    onboard(client, account.id)
    return account.id


def destination_charge(client, account: str, *, amount: int = 4500, fee: int | None = 675, **extra: Any) -> Any:
    pat, card = saved_card(client)
    split: dict[str, Any] = {"transfer_data": {"destination": account}}
    if fee is not None:
        split["application_fee_amount"] = fee
    return charge_off_session(client, pat, card, amount=amount, **split, **extra)


def expanded_charge(sandbox, intent_id: str) -> dict:
    expand = "expand[]=latest_charge.transfer&expand[]=latest_charge.application_fee"
    return raw_get(sandbox, f"/v1/payment_intents/{intent_id}?{expand}")["latest_charge"]


def test_an_off_session_destination_charge_transfers_the_whole_amount_and_takes_the_fee(client, sandbox):
    account = teacher(client)
    intent = destination_charge(client, account, amount=4500, fee=675, transfer_group="series-1")
    assert (intent.status, intent.amount_received) == ("succeeded", 4500)
    assert (intent.transfer_data.destination, intent.application_fee_amount) == (account, 675)
    charge = expanded_charge(sandbox, intent.id)
    transfer, fee = charge["transfer"], charge["application_fee"]
    assert (transfer["amount"], transfer["destination"]) == (4500, account)
    assert transfer["source_transaction"] == charge["id"]
    assert transfer["transfer_group"] == "series-1"
    assert (fee["amount"], fee["account"], fee["charge"]) == (675, account, charge["id"])
    assert (charge["transfer_data"]["destination"], charge["application_fee_amount"]) == (account, 675)
    # The platform: +charge, -transfer, +fee; the teacher: the payment of 4500, net of the fee.
    mine = {t["source"]: t for t in balance(sandbox)}
    assert (mine[charge["id"]]["amount"], mine[transfer["id"]]["amount"], mine[fee["id"]]["amount"]) == (
        4500,
        -4500,
        675,
    )
    [payment] = balance(sandbox, account)
    assert (payment["type"], payment["amount"], payment["fee"], payment["net"]) == ("payment", 4500, 675, 3825)
    assert payment["source"] == transfer["destination_payment"]
    types = event_types(client)
    for kind in ("transfer.created", "application_fee.created", "charge.succeeded", "payment_intent.succeeded"):
        assert types.count(kind) == 1, kind


def test_without_a_fee_the_whole_amount_goes_to_the_account(client, sandbox):
    account = teacher(client)
    intent = destination_charge(client, account, amount=3000, fee=None)
    charge = expanded_charge(sandbox, intent.id)
    assert (charge["transfer"]["amount"], charge["application_fee"]) == (3000, None)
    assert intent.application_fee_amount is None
    [payment] = balance(sandbox, account)
    assert (payment["amount"], payment["net"]) == (3000, 3000)
    assert client.v1.application_fees.list().data == []


def test_a_replayed_key_makes_one_transfer(client, sandbox):
    account = teacher(client)
    pat, card = saved_card(client)
    split = {"transfer_data": {"destination": account}, "application_fee_amount": 500}
    first = charge_off_session(client, pat, card, key="series-1-week-2", **split)
    again = charge_off_session(client, pat, card, key="series-1-week-2", **split)
    assert again.id == first.id
    assert len(client.v1.transfers.list(params={"destination": account}).data) == 1


def test_refunds_reverse_the_transfer_and_refund_the_fee_pro_rata(client, sandbox):
    account = teacher(client)
    intent = destination_charge(client, account, amount=5001, fee=751)
    charge = expanded_charge(sandbox, intent.id)
    client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1000})  # no flags: the teacher keeps it
    assert client.v1.transfers.retrieve(charge["transfer"]["id"]).amount_reversed == 0
    flags = {"reverse_transfer": True, "refund_application_fee": True}
    client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1001, **flags})
    transfer = client.v1.transfers.retrieve(charge["transfer"]["id"])
    fee = client.v1.application_fees.retrieve(charge["application_fee"]["id"])
    # On totals (2001 refunded of 5001): the transfer back by 2001; the fee 751 x 2001 / 5001 = 300.49 -> 300.
    assert (transfer.amount_reversed, fee.amount_refunded) == (2001, 300)
    client.v1.refunds.create(params={"payment_intent": intent.id, **flags})
    transfer = client.v1.transfers.retrieve(transfer.id)
    fee = client.v1.application_fees.retrieve(fee.id)
    assert (transfer.amount_reversed, transfer.reversed, fee.amount_refunded, fee.refunded) == (5001, True, 751, True)
    # The teacher and the platform together keep what was paid less what was refunded: nothing.
    platform = sum(t["net"] for t in balance(sandbox))
    assert sum(t["net"] for t in balance(sandbox, account)) == 0
    assert platform == 0


def test_a_declined_destination_charge_transfers_nothing(client, sandbox):
    account = teacher(client)
    pat, card = saved_card(client, "pm_card_chargeCustomerFail")
    split = {"transfer_data": {"destination": account}, "application_fee_amount": 675}
    with pytest.raises(stripe.CardError) as declined:
        charge_off_session(client, pat, card, **split)
    intent = declined.value.error.payment_intent
    assert (intent.status, intent.transfer_data.destination, intent.application_fee_amount) == (
        "requires_payment_method",
        account,
        675,
    )
    assert client.v1.transfers.list().data == [] and client.v1.application_fees.list().data == []
    assert balance(sandbox, account) == []


@pytest.mark.parametrize(
    ("split", "param", "code"),
    [
        ({"transfer_data": {"destination": "NOT_ONBOARDED"}}, "transfer_data[destination]", None),
        ({"transfer_data": {"destination": "acct_missing"}}, "transfer_data[destination]", "resource_missing"),
        ({"transfer_data": {"destination": "TEACHER"}, "application_fee_amount": 4501}, "application_fee_amount", None),
        ({"application_fee_amount": 100}, "application_fee_amount", None),
        ({"transfer_data": {"destination": "TEACHER", "amount": 4000}}, "transfer_data", None),
        ({"transfer_data": {"destination": "TEACHER"}, "on_behalf_of": "TEACHER"}, "on_behalf_of", None),
    ],
)
def test_refusals_charge_nothing(client, sandbox, split, param, code):
    account, not_onboarded = teacher(client), make_account(client).id
    names = {"TEACHER": account, "NOT_ONBOARDED": not_onboarded}

    def named(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: named(v) for k, v in value.items()}
        return names.get(value, value) if isinstance(value, str) else value

    pat, card = saved_card(client)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        charge_off_session(client, pat, card, amount=4500, **named(split))
    assert (refused.value.http_status, refused.value.param) == (400, param)
    if split.get("transfer_data", {}).get("destination") == "NOT_ONBOARDED":
        assert refused.value.code == "insufficient_capabilities_for_transfer"
    elif code:
        assert refused.value.code == code
    assert "payment_intent.created" not in event_types(client)
    assert balance(sandbox) == [] and client.v1.transfers.list().data == []
