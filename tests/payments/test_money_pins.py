"""Money behaviour no other test pinned (issue 32's surviving mutants), each written from the rule.

Every `now` here is derived from the booking's own start or from the test's own events, never from
the hour the suite runs at: a session in three days at 10:00 UTC, cancelled at "start - 24 h", is
the same case at 00:15 and at 23:45.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from tests import factories as f
from tests.jobs.helpers import row, run, set_columns, webhooks_off
from tests.support import payments as pay
from tests.support import webhooks as wh
from tests.support.servers import wait_for
from tutorbook.bookings import cancelling, lookup, refunds, settling
from tutorbook.bookings.lifecycle import Reason
from tutorbook.identity import AuthUser
from tutorbook.teachers.policy import Terms

H = timedelta(hours=1)


def _paid_then_cancelled_unpaid(api, c, sandbox, *, rate=6000) -> dict:
    """A booking the app cancelled as unpaid while its checkout stayed open, then paid at Stripe
    with the webhook lost: a late payment waiting to be seen. {"b", "checkout", "row"}."""
    webhooks_off(sandbox)
    t, p = f.teacher(c, rate=rate), f.parent(c)
    b = f.book(p, t, starts_at=f.slot(days=3)).json()["data"]
    api.state.services.tx_sync(
        settling.cancel_unpaid,
        booking_id=uuid.UUID(b["id"]),
        reason=Reason.CHECKOUT_EXPIRED,
        actor="test",
        now=row(api, b["id"]).created_at,
    )
    assert pay.pay(b["checkoutUrl"]).status_code == 303
    checkout = api.state.services.gateway.retrieve_checkout_sync(b["stripeSessionId"])
    assert checkout.paid
    return {"b": b, "checkout": checkout, "row": row(api, b["id"])}


def _fulfil(api, checkout, *, now):
    return api.state.services.tx_sync(
        settling.fulfil, checkout=checkout, actor="test", platform=Terms.platform(api.state.settings), now=now
    )


def test_a_late_payment_seen_once_the_session_has_started_is_refunded_in_full_not_confirmed(api, c, sandbox):
    x = _paid_then_cancelled_unpaid(api, c, sandbox, rate=4000)
    outcome = _fulfil(api, x["checkout"], now=x["row"].starts_at)  # the very minute it starts
    assert outcome.kind == "late_payment_refunded"
    booking = row(api, x["b"]["id"])
    assert (booking.status, booking.paid_at, booking.cancellation_reason) == (3, None, "checkout_expired")
    assert [(r.amount, r.reason, r.status) for r in pay.refunds(api.state.db, x["b"]["id"])] == [
        (4000, "late_payment", "pending")
    ]


def test_a_late_payment_seen_a_minute_before_the_start_is_confirmed(api, c, sandbox):
    x = _paid_then_cancelled_unpaid(api, c, sandbox)
    outcome = _fulfil(api, x["checkout"], now=x["row"].starts_at - timedelta(minutes=1))
    assert outcome.kind == "late_payment_confirmed"
    assert row(api, x["b"]["id"]).status == 1
    assert pay.refunds(api.state.db, x["b"]["id"]) == []


def _confirmed(c, *, rate=6000, late_percent=None) -> dict:
    t, p = f.teacher(c, rate=rate), f.parent(c)
    if late_percent is not None:
        r = t["client"].put(
            "/api/Teachers/me/policy",
            json={
                "fullRefundHours": 24,
                "lateRefundPercent": late_percent,
                "rescheduleDeadlineHours": 24,
                "maxReschedules": 2,
            },
        )
        assert r.status_code == 200, r.text
    b = f.book(p, t, starts_at=f.slot(days=3)).json()["data"]
    assert pay.pay(b["checkoutUrl"]).status_code == 303
    r = p["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}")
    assert r.json()["data"]["status"] == 1, r.text
    return {"t": t, "p": p, "b": b}


def _as_user(x: dict, who: str) -> AuthUser:
    u = x[who]["user"]
    return AuthUser(id=uuid.UUID(u["id"]), role=u["role"], email=u["email"], full_name=u["fullName"], time_zone="UTC")


def _cancel(api, x, *, who="p", now):
    return api.state.services.tx_sync(
        cancelling.cancel_confirmed,
        user=_as_user(x, who),
        booking_id=uuid.UUID(x["b"]["id"]),
        settings=api.state.settings,
        now=now,
    )


def test_a_parent_cancelling_exactly_at_the_deadline_gets_everything_back(api, c):
    x = _confirmed(c)
    start = row(api, x["b"]["id"]).starts_at
    _cancel(api, x, now=start - 24 * H)
    assert [r.amount for r in pay.refunds(api.state.db, x["b"]["id"])] == [6000]


def test_a_parent_cancelling_an_hour_after_the_deadline_gets_only_the_late_share(api, c):
    x = _confirmed(c, late_percent=25)
    start = row(api, x["b"]["id"]).starts_at
    _cancel(api, x, now=start - 23 * H)
    assert [r.amount for r in pay.refunds(api.state.db, x["b"]["id"])] == [1500]


def test_a_parent_cancelling_a_second_after_the_deadline_gets_nothing_under_the_default_terms(api, c):
    x = _confirmed(c)
    start = row(api, x["b"]["id"]).starts_at
    outcome = _cancel(api, x, now=start - 24 * H + timedelta(seconds=1))
    assert outcome.kind == "cancelled" and row(api, x["b"]["id"]).status == 3
    assert pay.refunds(api.state.db, x["b"]["id"]) == []


def test_a_booking_partly_refunded_at_stripe_then_cancelled_asks_only_for_what_is_left(api, c, sandbox):
    x = _confirmed(c)
    intent = row(api, x["b"]["id"]).stripe_payment_intent_id
    # An operator refunds 2,500 of 6,000 on Stripe's dashboard; charge.refunded tells the app.
    api.state.services.gateway.refund_sync(
        payment_intent=intent, amount=2500, refund_key=f"dash-{intent}", booking_id=x["b"]["id"], connect=False
    )
    wait_for(lambda: row(api, x["b"]["id"]).refunded_amount == 2500, message="charge.refunded handled")
    r = x["t"]["client"].post(f"/api/Sessions/{x['b']['id']}/cancel")  # the teacher: "full refund"
    assert r.status_code == 200, r.text
    assert [(rf.amount, rf.status) for rf in pay.refunds(api.state.db, x["b"]["id"])] == [(3500, "succeeded")]
    # Stripe's total arrives with the refund's charge.refunded (the app's own rows add up to 3,500).
    wait_for(lambda: row(api, x["b"]["id"]).refunded_amount == 6000, message="Stripe's total recorded")
    assert pay.refunded_at_stripe(sandbox, intent) == 6000


def test_an_older_charge_refunded_event_never_lowers_the_refunded_amount(api, c):
    x = _confirmed(c)
    intent = row(api, x["b"]["id"]).stripe_payment_intent_id
    charge = {"object": "charge", "id": "ch_pin", "payment_intent": intent, "refunded": False}
    newer = wh.event("charge.refunded", {**charge, "amount_refunded": 4000})
    older = wh.event("charge.refunded", {**charge, "amount_refunded": 1000})
    assert wh.post(api.state.base_url, newer).json()["data"] == "refund_recorded"
    assert row(api, x["b"]["id"]).refunded_amount == 4000
    assert wh.post(api.state.base_url, older).json()["data"] == "refund_recorded"
    assert row(api, x["b"]["id"]).refunded_amount == 4000


def test_purge_keeps_a_never_paid_booking_that_carries_a_refund_and_deletes_its_bare_neighbour(api, c, sandbox):
    webhooks_off(sandbox)
    t, p = f.teacher(c), f.parent(c)
    kept = f.book(p, t, starts_at=f.slot(days=3, hour=9)).json()["data"]
    gone = f.book(p, t, starts_at=f.slot(days=3, hour=12)).json()["data"]
    cancelled_at = row(api, kept["id"]).created_at
    for b in (kept, gone):
        api.state.services.tx_sync(
            settling.cancel_unpaid,
            booking_id=uuid.UUID(b["id"]),
            reason=Reason.PAYMENT_CANCELLED,
            actor="test",
            now=cancelled_at,
        )

    # A payment through another checkout, refunded: the booking itself was never paid.
    def refund_other_payment(session):
        booking = lookup.must_get(session, booking_id=uuid.UUID(kept["id"]))
        return refunds.request_payment_refund(
            session,
            booking=booking,
            payment_intent="pi_other_checkout",
            amount=6000,
            currency="usd",
            reason="other_checkout",
            now=cancelled_at,
        )

    assert api.state.services.tx_sync(refund_other_payment) is not None
    retention = timedelta(days=api.state.settings.purge_retention_days)
    result = run(api, "purge", now=cancelled_at + retention + H)
    outcomes = {str(i.booking_id): i.outcome for i in result.items}
    assert outcomes.get(gone["id"]) == "deleted" and kept["id"] not in outcomes
    assert row(api, gone["id"]) is None
    assert row(api, kept["id"]).status == 3
    assert [r.amount for r in pay.refunds(api.state.db, kept["id"])] == [6000]


def test_purge_keeps_a_never_paid_booking_until_the_retention_has_passed(api, c, sandbox):
    webhooks_off(sandbox)
    t, p = f.teacher(c), f.parent(c)
    b = f.book(p, t, starts_at=f.slot(days=3)).json()["data"]
    at = row(api, b["id"]).created_at
    api.state.services.tx_sync(
        settling.cancel_unpaid, booking_id=uuid.UUID(b["id"]), reason=Reason.PAYMENT_CANCELLED, actor="test", now=at
    )
    set_columns(api, b["id"], cancelled_at=at)
    retention = timedelta(days=api.state.settings.purge_retention_days)
    assert b["id"] not in {str(i.booking_id) for i in run(api, "purge", now=at + retention).items}
    assert row(api, b["id"]) is not None
    assert [str(i.booking_id) for i in run(api, "purge", now=at + retention + timedelta(seconds=1)).items] == [b["id"]]


def test_a_partial_refund_at_stripe_whose_webhook_was_lost_still_leaves_the_rest_to_refund(api, c, sandbox):
    """The app never heard of the 2,500 refunded at Stripe: the teacher's "full refund" must still
    return what is left (3,500), not ask for 6,000, be refused and return nothing."""
    x = _confirmed(c)
    intent = row(api, x["b"]["id"]).stripe_payment_intent_id
    webhooks_off(sandbox)
    api.state.services.gateway.refund_sync(
        payment_intent=intent, amount=2500, refund_key=f"dash-{intent}", booking_id=x["b"]["id"], connect=False
    )
    assert row(api, x["b"]["id"]).refunded_amount == 0  # charge.refunded never arrived
    r = x["t"]["client"].post(f"/api/Sessions/{x['b']['id']}/cancel")
    assert r.status_code == 200, r.text
    assert pay.refunded_at_stripe(sandbox, intent) == 6000
    assert row(api, x["b"]["id"]).refunded_amount == 6000
