"""A paid checkout confirms a booking only at the booking's price, in its currency, through its
own checkout. Any other paid checkout naming the booking (client_reference_id / metadata) is
refunded in full and the booking is left as it was, whichever way the payment arrives: the
webhook, the success page's confirm-payment, reconcile, or a late payment."""

import uuid

import pytest

from tests import factories as f
from tests.jobs.helpers import booked, confirmed, row, run, sandbox_since, set_columns, webhooks_off
from tests.support import payments as pay
from tests.support.servers import wait_for
from tutorbook.bookings import settling
from tutorbook.bookings.lifecycle import Reason
from tutorbook.clock import utc_now

PRICE = 6000  # f.teacher's default rate, one hour


def without_checkout(api, booking_id) -> None:
    """As if the app crashed between holding the slot and storing the checkout."""
    set_columns(api, booking_id, stripe_session_id=None, checkout_url=None)


def paid_other(sandbox, booking_id, **kwargs) -> dict:
    """Create and pay a checkout naming the booking; the session as Stripe has it afterwards."""
    cs = pay.other_checkout(sandbox, booking_id=booking_id, **kwargs)
    assert pay.pay(cs["url"]).status_code == 303
    return pay.sandbox_session(sandbox, cs["id"])


def settled_refund(api, booking_id):
    """The booking's one refund, once Stripe has accepted it."""
    wait_for(lambda: [r.status for r in pay.refunds(api.state.db, booking_id)] == ["succeeded"], message="refund")
    [refund] = pay.refunds(api.state.db, booking_id)
    return refund


def assert_refunded_in_full(api, sandbox, booking_id, cs, *, reason: str) -> None:
    refund = settled_refund(api, booking_id)
    assert (refund.amount, refund.currency, refund.reason) == (cs["amount_total"], cs["currency"], reason)
    assert refund.stripe_refund_id.startswith("re_")
    assert refund.payment_intent_id == cs["payment_intent"]  # the refused payment, not the booking's
    assert pay.refunded_at_stripe(sandbox, cs["payment_intent"]) == cs["amount_total"]
    # Money that never paid for the booking is not the booking's refund.
    assert row(api, booking_id).refunded_amount == 0


MISMATCHES = [
    pytest.param({"amount": PRICE - 1}, "amount_mismatch", id="cheaper"),
    pytest.param({"amount": PRICE + 100}, "amount_mismatch", id="dearer"),
    pytest.param({"amount": PRICE, "currency": "eur"}, "currency_mismatch", id="currency"),
]


@pytest.mark.parametrize("paid,reason", MISMATCHES)
def test_the_webhook_refunds_a_payment_at_another_price_and_leaves_the_booking_pending(api, c, sandbox, paid, reason):
    b = booked(c)["b"]
    without_checkout(api, b["id"])
    cs = paid_other(sandbox, b["id"], **paid)  # the sandbox delivers checkout.session.completed
    assert_refunded_in_full(api, sandbox, b["id"], cs, reason=reason)
    booking = row(api, b["id"])
    assert (booking.status, booking.paid_at, booking.stripe_session_id) == (0, None, None)
    assert booking.stripe_payment_intent_id is None
    assert pay.history(api.state.db, b["id"]) == [(None, 0, "booked"), (0, 0, reason)]


def test_the_success_page_call_refuses_a_payment_at_another_price_with_409_and_refunds_it_once(api, c, sandbox):
    webhooks_off(sandbox)
    x = booked(c)
    b, parent = x["b"], x["p"]["client"]
    without_checkout(api, b["id"])
    cs = paid_other(sandbox, b["id"], amount=PRICE - 1000)
    r = parent.post(f"/api/Sessions/confirm-payment/{cs['id']}")
    body = r.json()
    assert r.status_code == 409 and body["success"] is False and body["data"] == {"reason": "amount_mismatch"}
    assert "refunded in full" in body["message"]
    assert_refunded_in_full(api, sandbox, b["id"], cs, reason="amount_mismatch")
    assert row(api, b["id"]).status == 0
    # Reloading the success page refunds nothing more and writes no more history.
    assert parent.post(f"/api/Sessions/confirm-payment/{cs['id']}").status_code == 409
    assert len(pay.refunds(api.state.db, b["id"])) == 1
    assert pay.history(api.state.db, b["id"]) == [(None, 0, "booked"), (0, 0, "amount_mismatch")]


def test_another_parent_cannot_confirm_a_checkout_that_names_someone_elses_booking(api, c, sandbox):
    webhooks_off(sandbox)
    b = booked(c)["b"]
    without_checkout(api, b["id"])
    cs = paid_other(sandbox, b["id"], amount=PRICE)
    stranger = f.parent(c)["client"]
    assert stranger.post(f"/api/Sessions/confirm-payment/{cs['id']}").status_code == 403
    assert pay.refunds(api.state.db, b["id"]) == [] and row(api, b["id"]).status == 0


def test_reconcile_lists_a_payment_at_another_price_then_refunds_it(api, c, sandbox):
    webhooks_off(sandbox)
    since = sandbox_since(sandbox)
    b = booked(c)["b"]
    without_checkout(api, b["id"])
    cs = paid_other(sandbox, b["id"], amount=PRICE, currency="gbp")
    found = run(api, "reconcile", since=since, dry_run=True)
    assert [(str(i.booking_id), i.kind, i.outcome) for i in found.mismatches] == [
        (b["id"], "currency_mismatch", "currency_mismatch")
    ]
    assert pay.refunds(api.state.db, b["id"]) == []  # the report changed nothing
    fixed = run(api, "reconcile", since=since)
    assert [(str(i.booking_id), i.outcome) for i in fixed.mismatches] == [(b["id"], "currency_mismatch")]
    assert_refunded_in_full(api, sandbox, b["id"], cs, reason="currency_mismatch")
    assert row(api, b["id"]).status == 0
    assert run(api, "reconcile", since=since, dry_run=True).mismatches == []  # refunded: settled


def test_a_late_payment_at_another_price_is_refunded_and_the_booking_stays_cancelled(api, c, sandbox):
    b = booked(c)["b"]
    without_checkout(api, b["id"])
    api.state.services.tx_sync(
        settling.cancel_unpaid,
        booking_id=uuid.UUID(b["id"]),
        reason=Reason.CHECKOUT_FAILED,
        actor="test",
        now=utc_now(),
    )
    cs = paid_other(sandbox, b["id"], amount=PRICE // 2)  # the slot is free: the old code confirmed this
    assert_refunded_in_full(api, sandbox, b["id"], cs, reason="amount_mismatch")
    booking = row(api, b["id"])
    assert (booking.status, booking.cancellation_reason, booking.paid_at) == (3, "checkout_failed", None)
    assert pay.history(api.state.db, b["id"])[-1] == (3, 3, "amount_mismatch")


def test_a_second_paid_checkout_for_a_confirmed_booking_is_refunded_in_full(api, c, sandbox):
    x = confirmed(c)
    b = x["b"]
    first_pi = row(api, b["id"]).stripe_payment_intent_id
    cs = paid_other(sandbox, b["id"], amount=PRICE)  # the right price, but not the booking's checkout
    assert_refunded_in_full(api, sandbox, b["id"], cs, reason="other_checkout")
    booking = row(api, b["id"])
    assert (booking.status, booking.stripe_session_id, booking.stripe_payment_intent_id) == (
        1,
        b["stripeSessionId"],
        first_pi,
    )
    assert pay.refunded_at_stripe(sandbox, first_pi) == 0  # the booking's own payment is untouched
    assert pay.history(api.state.db, b["id"])[-1] == (1, 1, "other_checkout")
    # The parent landing on the second checkout's success page is told, not shown a confirmation.
    r = x["p"]["client"].post(f"/api/Sessions/confirm-payment/{cs['id']}")
    assert r.status_code == 409 and r.json()["data"] == {"reason": "other_checkout"}
    assert len(pay.refunds(api.state.db, b["id"])) == 1


def test_a_paid_checkout_for_a_pending_booking_that_has_another_checkout_is_refunded(api, c, sandbox):
    b = booked(c)["b"]
    cs = paid_other(sandbox, b["id"], amount=PRICE)
    assert_refunded_in_full(api, sandbox, b["id"], cs, reason="other_checkout")
    booking = row(api, b["id"])
    assert (booking.status, booking.stripe_session_id) == (0, b["stripeSessionId"])
    # Its own checkout still confirms it.
    assert pay.pay(b["checkoutUrl"]).status_code == 303
    wait_for(lambda: row(api, b["id"]).status == 1, message="confirmed")
    assert row(api, b["id"]).refunded_amount == 0


@pytest.mark.parametrize("failed", [False, True], ids=["pending", "checkout_failed"])
def test_a_full_price_checkout_the_booking_did_not_create_is_refunded_not_adopted(api, c, sandbox, failed):
    """The booking's own checkout creation failed (no id recorded); a checkout made elsewhere at
    the right price, naming it, must not confirm it: the teacher's share would stay with the platform."""
    b = booked(c)["b"]
    without_checkout(api, b["id"])
    if failed:
        api.state.services.tx_sync(
            settling.cancel_unpaid,
            booking_id=uuid.UUID(b["id"]),
            reason=Reason.CHECKOUT_FAILED,
            actor="test",
            now=utc_now(),
        )
    cs = paid_other(sandbox, b["id"], amount=PRICE)  # the webhook delivers it
    assert_refunded_in_full(api, sandbox, b["id"], cs, reason="other_checkout")
    booking = row(api, b["id"])
    assert (booking.status, booking.paid_at, booking.stripe_session_id) == (3 if failed else 0, None, None)
    assert pay.history(api.state.db, b["id"])[-1][2] == "other_checkout"
