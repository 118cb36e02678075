"""Cancelling a paid booking: the refund the terms give (full, the late share, none), partial
refunds counted, the teacher's and the admin's cancellations, and what Stripe received."""

from __future__ import annotations

import pytest

from tests.service.world import World, hours_from_now, later, refused
from tutorbook.bookings.policy import RefundChoice
from tutorbook.flows import booking as flows

pytestmark = pytest.mark.service

CONFIRMED, COMPLETED, CANCELLED = 1, 2, 3


def test_a_parent_cancelling_a_day_ahead_gets_everything_back(world: World):
    t, p = world.teacher(rate=6000), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    done = world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    assert (done.status, done.cancellation_reason, done.refunded_amount) == (CANCELLED, "parent_cancelled", 6000)
    assert world.refunds(paid.id) == [(6000, "succeeded")]
    [sent] = world.fake.called("refund")
    assert (sent["payment_intent"], sent["amount"], sent["connect"]) == (paid.stripe_payment_intent_id, 6000, False)
    assert world.deliver_all("charge.refunded") == ["refund_recorded"]  # Stripe's total agrees
    assert world.view(paid.id).refunded_amount == 6000
    sent = world.mail_sent(paid.id)  # the confirmation, superseded by the cancel within minutes, is not
    assert {k: sent.get(k) for k in ("cancelled.parent", "cancelled.teacher", "refund_issued.parent")} == {
        "cancelled.parent": 1, "cancelled.teacher": 1, "refund_issued.parent": 1
    }  # fmt: skip
    try:  # cancelled already: answered or refused, nothing changes and nothing more is sent
        world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    except Exception as exc:  # noqa: BLE001 - only the route's 4xx is allowed
        assert 400 <= getattr(exc, "status_code", 500) < 500, exc
    assert world.deliver_all("charge.refunded") == ["duplicate"]
    assert world.mail_sent(paid.id, at=later(1)) == sent and world.refunds(paid.id) == [(6000, "succeeded")]


def test_a_parent_cancelling_late_gets_nothing_back_and_stripe_is_not_asked(world: World):
    t, p = world.teacher(), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(5))
    done = world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    assert (done.status, done.refunded_amount) == (CANCELLED, 0)
    assert world.refunds(paid.id) == [] and world.fake.called("refund") == []


def test_a_teachers_late_share_is_a_partial_refund(world: World):
    t, p = world.teacher(rate=6000, late_refund_percent=50), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(5))
    assert paid.terms is not None and paid.terms.late_refund_percent == 50
    done = world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    assert done.refunded_amount == 3000 and world.stripe_refunds(paid.id) == [3000]
    assert world.fake.payments[str(paid.stripe_payment_intent_id)].refunded == 3000


def test_the_terms_in_force_when_paid_are_kept_though_the_teacher_changes_them(world: World):
    t, p = world.teacher(full_refund_hours=2), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(5))
    world.change_terms(t, full_refund_hours=48)  # stricter now; the booking keeps 2 h
    done = world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    assert done.refunded_amount == paid.price_amount


def test_a_teacher_cancelling_even_late_refunds_everything(world: World):
    t, p = world.teacher(), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(3))
    done = world.run(flows.cancel_booking(world.svc, user=t, booking_id=paid.id, note="I am ill"))
    assert (done.cancellation_reason, done.refunded_amount) == ("teacher_cancelled", paid.price_amount)
    assert world.stripe_refunds(paid.id) == [paid.price_amount]
    assert world.history(paid.id)[-1].actor == t.actor


def test_an_admins_partial_refund_counts_when_the_parent_later_cancels(world: World):
    t, p, admin = world.teacher(rate=6000), world.parent(), world.admin()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    kept, new = world.run(
        flows.refund_as_admin(world.svc, admin=admin, booking_id=paid.id, amount=1000, note="late start", key="k1")
    )
    assert new and (kept.status, kept.refunded_amount) == (CONFIRMED, 1000)
    _, again = world.run(
        flows.refund_as_admin(world.svc, admin=admin, booking_id=paid.id, amount=1000, note="late start", key="k1")
    )
    assert not again  # the same form sent twice refunds once
    done = world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    assert done.refunded_amount == 6000
    assert world.stripe_refunds(paid.id) == [1000, 5000]
    assert world.fake.payments[str(paid.stripe_payment_intent_id)].left == 0


@pytest.mark.parametrize("choice,refunded", [(RefundChoice.FULL, 6000), (RefundChoice.POLICY, 0), ("none", 0)])
def test_an_admin_cancelling_chooses_the_refund(world: World, choice, refunded):
    t, p, admin = world.teacher(rate=6000), world.parent(), world.admin()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(5))  # late: the policy gives nothing
    done = world.run(
        flows.cancel_as_admin(world.svc, admin=admin, booking_id=paid.id, refund=choice, note="double booked")
    )
    assert (done.status, done.cancellation_reason, done.refunded_amount) == (CANCELLED, "admin_cancelled", refunded)
    assert sum(world.stripe_refunds(paid.id)) == refunded


def test_only_a_confirmed_booking_is_cancelled_with_a_refund(world: World):
    t, p = world.teacher(), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(2))
    assert world.job("complete", at=later(4)).counts() == {"completed": 1}
    assert world.view(paid.id).status == COMPLETED
    with refused(400):
        world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    with refused(403):  # not theirs
        world.run(flows.cancel_booking(world.svc, user=world.parent()[0], booking_id=paid.id))
    assert world.fake.called("refund") == []

