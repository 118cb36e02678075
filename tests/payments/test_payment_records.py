"""Issue 27: each attempt to pay a booking is a payment of its own, moved through its own states
(bookings/payment_states.py) by the same flows that move the booking: booked -> open, paid ->
paid, Back / expiry -> withdrawn / expired, refunded in full -> refunded, a refused checkout ->
refused with its refund tied to it."""

import uuid

import sqlalchemy as sa

from tests import factories as f
from tests.jobs.helpers import booked, confirmed, later, run, set_columns, webhooks_off
from tests.support import payments as pay
from tests.support.servers import wait_for
from tutorbook.bookings import records
from tutorbook.bookings import repository as repo
from tutorbook.bookings.models import BookingTerms, Payment

PRICE = 6000  # f.teacher's default rate, one hour


def payments(api, booking_id) -> list[Payment]:
    with api.state.db.session_scope() as s:
        stmt = sa.select(Payment).where(Payment.booking_id == uuid.UUID(str(booking_id))).order_by(Payment.created_at)
        return list(s.scalars(stmt))


def test_booking_opens_the_bookings_payment_with_its_checkout_at_its_price(api, c):
    b = booked(c)["b"]
    [p] = payments(api, b["id"])
    assert (p.kind, p.state, p.amount, p.currency) == ("checkout", "open", PRICE, b["currency"])
    assert (p.stripe_checkout_id, p.checkout_url) == (b["stripeSessionId"], b["checkoutUrl"])
    assert p.paid_at is None and p.refunded_amount == 0


def test_paying_moves_the_payment_to_paid_with_its_intent_and_the_booking_to_confirmed(api, c):
    x = confirmed(c)
    [p] = payments(api, x["b"]["id"])
    booking = pay.booking_row(api.state.db, x["b"]["id"])
    assert p.state == "paid" and p.stripe_payment_intent_id.startswith("pi_")
    assert p.paid_at is not None and booking.paid_at is not None and booking.status == 1


def test_the_parents_back_withdraws_the_checkout_and_the_expire_job_expires_one(api, c, sandbox):
    webhooks_off(sandbox)
    t = f.teacher(c)
    left = booked(c, teacher=t, days=2)
    r = left["p"]["client"].post(f"/api/Sessions/cancel-payment/{left['b']['stripeSessionId']}")
    assert r.status_code == 200, r.text
    assert [p.state for p in payments(api, left["b"]["id"])] == ["withdrawn"]
    stale = booked(c, teacher=t, days=3)
    set_columns(api, stale["b"]["id"], checkout_expires_at=later(minutes=-60))
    run(api, "expire", now=later())
    assert [p.state for p in payments(api, stale["b"]["id"])] == ["expired"]


def test_a_full_refund_moves_the_payment_to_refunded(api, c):
    x = confirmed(c)
    r = x["t"]["client"].post(f"/api/Sessions/{x['b']['id']}/cancel")
    assert r.status_code == 200 and r.json()["data"]["refundedAmount"] == PRICE, r.text
    wait_for(lambda: [p.state for p in payments(api, x["b"]["id"])] == ["refunded"], message="refunded")
    [refund] = pay.refunds(api.state.db, x["b"]["id"])
    [p] = payments(api, x["b"]["id"])
    assert refund.payment_id == p.id and p.refunded_amount == PRICE


def test_a_refused_checkout_is_a_refused_payment_of_its_own_with_its_refund(api, c, sandbox):
    b = booked(c)["b"]
    cs = pay.other_checkout(sandbox, booking_id=b["id"], amount=PRICE - 1)
    assert pay.pay(cs["url"]).status_code == 303  # the sandbox delivers checkout.session.completed
    wait_for(lambda: len(payments(api, b["id"])) == 2, message="refused payment")
    own, refused = sorted(payments(api, b["id"]), key=lambda p: p.state != "open")
    assert (own.state, refused.state) == ("open", "refused")
    paid = pay.sandbox_session(sandbox, cs["id"])
    assert (refused.amount, refused.stripe_payment_intent_id) == (PRICE - 1, paid["payment_intent"])
    wait_for(lambda: [r.status for r in pay.refunds(api.state.db, b["id"])] == ["succeeded"], message="refund")
    [refund] = pay.refunds(api.state.db, b["id"])
    assert refund.payment_id == refused.id
    assert pay.booking_row(api.state.db, b["id"]).refunded_amount == 0  # not the booking's payment


def test_the_terms_stored_when_paid_replace_older_ones_whether_or_not_they_were_loaded(api, c):
    x = confirmed(c)
    booking_id = uuid.UUID(x["b"]["id"])
    checkout_id = x["b"]["stripeSessionId"]

    def stored() -> list[tuple[int, int, int, int]]:
        with api.state.db.session_scope() as s:
            rows = s.execute(
                sa.select(
                    BookingTerms.full_refund_hours,
                    BookingTerms.late_refund_percent,
                    BookingTerms.reschedule_deadline_hours,
                    BookingTerms.max_reschedules,
                ).where(BookingTerms.booking_id == booking_id)
            )
            return [tuple(r) for r in rows]

    assert len(stored()) == 1  # the confirmation kept the terms in force
    newer = {"full_refund_hours": 7, "late_refund_percent": 30, "reschedule_deadline_hours": 5, "max_reschedules": 1}
    with api.state.db.session_scope() as s:  # read as the webhook reads it: its terms not loaded
        booking = repo.by_checkout_id(s, checkout_id, records=False)
        assert booking is not None and "terms_in_force" in sa.inspect(booking).unloaded
        records.store_terms(s, booking, newer)
    assert stored() == [(7, 30, 5, 1)]
    newest = newer | {"full_refund_hours": 9}
    with api.state.db.session_scope() as s:  # read with its records: the older terms loaded
        booking = repo.get(s, booking_id)
        assert booking is not None and booking.terms_full_refund_hours == 7
        records.store_terms(s, booking, newest)
        assert booking.terms_full_refund_hours == 9
    assert stored() == [(9, 30, 5, 1)]
