"""Every object the sandbox returns has all top-level fields of Stripe's sample object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .helpers import raw_get, session_params, submit_card
from .test_connect import make_account, onboard, paid_destination_charge

# A copy of stripe/fixtures3-subset.json (Stripe's sample objects from its OpenAPI repo).
FIXTURES = Path(__file__).with_name("fixtures3-subset.json")
# Sample objects of types the sandbox does not serve (no login links, payouts or disputes).
NOT_SERVED = {"login_link", "payout", "dispute"}
CONNECT = {
    "account",
    "account_link",
    "application_fee",
    "balance_transaction",
    "fee_refund",
    "transfer",
    "transfer_reversal",
}


def load_fixtures() -> dict[str, Any]:
    """Stripe's official sample objects, keyed by object type."""
    return json.loads(FIXTURES.read_text())["resources"]


def kind(value: Any) -> str:
    """A JSON type name, telling ints from bools."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def assert_shape(obj: dict[str, Any], sample: dict[str, Any]) -> None:
    """obj has every key of sample; where both are non-null, the JSON types agree."""
    assert not [key for key in obj if key.startswith("_")], "private keys leaked"
    missing = sorted(set(sample) - set(obj))
    assert not missing, f"{sample['object']} lacks {missing}"
    for key, expected in sample.items():
        if expected is not None and obj[key] is not None:
            assert kind(obj[key]) == kind(expected), (sample["object"], key, obj[key])


def test_every_object_type_matches_the_fixtures(client, sandbox):
    fixtures = load_fixtures()
    session = client.v1.checkout.sessions.create(params=session_params())
    submit_card(session.url)
    paid = raw_get(sandbox, f"/v1/checkout/sessions/{session.id}")
    intent = raw_get(sandbox, f"/v1/payment_intents/{paid['payment_intent']}")
    refund = client.v1.refunds.create(params={"payment_intent": intent["id"], "amount": 100})
    other = client.v1.checkout.sessions.create(params=session_params())
    client.v1.checkout.sessions.expire(other.id)

    returned = {
        "checkout.session": [
            paid,
            raw_get(sandbox, f"/v1/checkout/sessions/{other.id}"),
            raw_get(sandbox, "/v1/checkout/sessions")["data"][0],
        ],
        "payment_intent": [intent],
        "charge": [raw_get(sandbox, f"/v1/charges/{intent['latest_charge']}")],
        "refund": [raw_get(sandbox, f"/v1/refunds/{refund.id}")],
        "event": raw_get(sandbox, "/v1/events")["data"],
    }
    assert set(returned) == set(fixtures) - NOT_SERVED - CONNECT
    for type_name, objs in returned.items():
        for obj in objs:
            assert obj["object"] == type_name
            assert_shape(obj, fixtures[type_name])
    # Objects inside events are full objects too.
    for event in returned["event"]:
        inner = event["data"]["object"]
        assert_shape(inner, fixtures[inner["object"]])
    assert {e["type"] for e in returned["event"]} == {
        "checkout.session.completed",
        "checkout.session.expired",
        "charge.refunded",
        "refund.created",
    }


def test_every_connect_object_type_matches_the_fixtures(client, sandbox):
    fixtures = load_fixtures()
    account = make_account(client)
    link = onboard(client, account.id)
    intent = paid_destination_charge(client, sandbox, account.id)
    charge = intent["latest_charge"]
    flags = {"reverse_transfer": True, "refund_application_fee": True}
    client.v1.refunds.create(params={"payment_intent": intent["id"], "amount": 1000, **flags})
    transfer = raw_get(sandbox, f"/v1/transfers/{charge['transfer']}")
    fee = raw_get(sandbox, f"/v1/application_fees/{charge['application_fee']}")
    returned = {
        "account": [raw_get(sandbox, f"/v1/accounts/{account.id}"), raw_get(sandbox, "/v1/accounts")["data"][0]],
        "account_link": [link.to_dict()],
        "transfer": [transfer, raw_get(sandbox, "/v1/transfers")["data"][0]],
        "application_fee": [fee, raw_get(sandbox, "/v1/application_fees")["data"][0]],
        "transfer_reversal": transfer["reversals"]["data"]
        + raw_get(sandbox, f"/v1/transfers/{transfer['id']}/reversals")["data"],
        "fee_refund": fee["refunds"]["data"] + raw_get(sandbox, f"/v1/application_fees/{fee['id']}/refunds")["data"],
        "balance_transaction": [
            raw_get(sandbox, f"/v1/balance_transactions/{obj['balance_transaction']}")
            for obj in (charge, transfer, fee, transfer["reversals"]["data"][0], fee["refunds"]["data"][0])
        ],
        "charge": [charge],
        "payment_intent": [intent],
    }
    assert CONNECT <= set(returned)
    for type_name, objs in returned.items():
        assert objs, type_name
        for obj in objs:
            assert obj["object"] == type_name
            assert_shape(obj, fixtures[type_name])
    events = raw_get(sandbox, "/v1/events?limit=100")["data"]
    assert {
        "account.updated",
        "transfer.created",
        "transfer.reversed",
        "application_fee.created",
        "application_fee.refunded",
    } <= {e["type"] for e in events}
    for event in events:
        assert_shape(event, fixtures["event"])
        inner = event["data"]["object"]
        assert_shape(inner, fixtures[inner["object"]])
