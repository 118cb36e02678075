"""A correctly signed event without the shape the handlers read is a 400 that changes nothing,
never a 500 (which Stripe would retry for days)."""

import pytest
import sqlalchemy as sa

from tests import factories as f
from tests.support import payments as pay
from tests.support import webhooks as wh
from tutorbook.payments.models import StripeEvent


@pytest.fixture
def pending(api, c, sandbox):
    pay.sandbox_config(sandbox, deliver_webhooks=False)  # these tests deliver events themselves
    return {"b": f.book(f.parent(c), f.teacher(c)).json()["data"]}


def checkout_object(sandbox, b) -> dict:
    return pay.sandbox_session(sandbox, b["stripeSessionId"])


def snapshot(db, booking_id):
    row = pay.booking_row(db, booking_id)
    return (row.status, row.paid_at, row.refunded_amount, len(pay.history(db, booking_id)))


def events_recorded(db) -> int:
    with db.session_scope() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(StripeEvent))


def _completed(obj_changes: dict | None = None, **event_changes):
    def build(sandbox, b):
        obj = {**checkout_object(sandbox, b), **(obj_changes or {})}
        return {**wh.event("checkout.session.completed", obj), **event_changes}

    return build


def _without_data(sandbox, b):
    evt = wh.event("checkout.session.completed", checkout_object(sandbox, b))
    del evt["data"]
    return evt


def _refunded(**obj):
    return lambda sandbox, b: wh.event("charge.refunded", {"object": "charge", "id": "ch_1", **obj})


MALFORMED = {
    "no data": _without_data,
    "data is a string": _completed(data="oops"),
    "data.object is a list": _completed(data={"object": ["cs_1"]}),
    "data.object has no id": lambda sandbox, b: wh.event("checkout.session.completed", {"status": "complete"}),
    "the checkout id is a number": _completed({"id": 12345}),
    "the checkout id has a NUL": _completed({"id": "cs_\x00"}),
    "the checkout id is 300 characters": _completed({"id": "cs_" + "x" * 297}),
    "the metadata is a list": _completed({"metadata": ["booking_id"]}),
    "the booking reference is a number": _completed({"metadata": {"booking_id": 42}}),
    "expires_at in year 5138": _completed({"expires_at": 10**11}),
    "amount_total is text": _completed({"amount_total": "lots"}),
    "amount_total is a numeric string": _completed({"amount_total": "6000"}),
    "expires_at is a float": _completed({"expires_at": 1.5e9}),
    "payment_intent is a number": _completed({"payment_intent": 7}),
    "the event id is 300 characters": _completed(id="evt_" + "x" * 296),
    "the event id has a NUL": _completed(id="evt_\x00"),
    "the type is a list": _completed(type=["checkout.session.completed"]),
    "an ignored type of 150 characters": _completed(type="x" * 150),
    "a refund of 2**40": _refunded(payment_intent="pi_1", amount_refunded=2**40),
    "a negative refund": _refunded(payment_intent="pi_1", amount_refunded=-5),
    "a refund's payment_intent with a NUL": _refunded(payment_intent="pi_\x00", amount_refunded=100),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_signed_event_without_the_shape_we_need_is_a_400_that_changes_nothing(api, sandbox, pending, case):
    b = pending["b"]
    pay.pay(b["checkoutUrl"])  # paid at Stripe: a well-formed completed event would confirm it
    before, recorded = snapshot(api.state.db, b["id"]), events_recorded(api.state.db)
    r = wh.post(api.state.base_url, MALFORMED[case](sandbox, b))
    assert r.status_code == 400, r.text
    assert r.json()["success"] is False and r.json()["message"].startswith("The Stripe event")
    assert snapshot(api.state.db, b["id"]) == before
    assert events_recorded(api.state.db) == recorded


def test_an_ignored_type_is_not_held_to_the_shape_of_a_handled_one(api):
    evt = wh.event("customer.updated", {"id": "cus_1"})
    evt["data"] = "whatever"
    r = wh.post(api.state.base_url, evt)
    assert r.status_code == 200 and r.json()["data"] == "ignored"


@pytest.mark.parametrize("request_field", ["req_123", None, ["x"]])
def test_an_expired_event_whose_request_is_not_an_object_is_a_plain_expiry(api, sandbox, pending, request_field):
    b = pending["b"]
    obj = dict(checkout_object(sandbox, b), status="expired", payment_status="unpaid")
    evt = wh.event("checkout.session.expired", obj)
    evt["request"] = request_field  # older API versions send the request id as a string
    r = wh.post(api.state.base_url, evt)
    assert r.status_code == 200 and r.json()["data"] == "checkout_expired"


@pytest.mark.parametrize("amount_refunded", [2**40, -5, "6000"])
def test_a_malformed_refund_of_the_booking_s_own_payment_is_a_400_that_changes_nothing(
    api, sandbox, pending, amount_refunded
):
    """The refund cases above name a payment no booking has, so they would change nothing even if
    the shape were not checked; these name the Confirmed booking's own payment."""
    b = pending["b"]
    pay.pay(b["checkoutUrl"])
    completed = wh.event("checkout.session.completed", checkout_object(sandbox, b))
    assert wh.post(api.state.base_url, completed).json()["data"] == "confirmed"
    intent = pay.booking_row(api.state.db, b["id"]).stripe_payment_intent_id
    assert intent
    before, recorded = snapshot(api.state.db, b["id"]), events_recorded(api.state.db)
    charge = {"object": "charge", "id": "ch_1", "payment_intent": intent, "amount_refunded": amount_refunded}
    r = wh.post(api.state.base_url, wh.event("charge.refunded", charge))
    assert r.status_code == 400, r.text
    assert snapshot(api.state.db, b["id"]) == before
    assert events_recorded(api.state.db) == recorded
    # The same event well formed does change it: the check above could fail.
    good = wh.event("charge.refunded", dict(charge, amount_refunded=1000))
    assert wh.post(api.state.base_url, good).json()["data"] == "refund_recorded"
    assert pay.booking_row(api.state.db, b["id"]).refunded_amount == 1000
