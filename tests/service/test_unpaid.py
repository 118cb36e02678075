"""A checkout that is never paid: the parent's "Back", Stripe's expiry, the expire job, a delayed
payment that fails. The checkout always ends unable to take money; nothing is charged."""

from __future__ import annotations

import uuid

import pytest

from tests.service.world import World, hours_from_now, later, refused
from tutorbook.bookings import settling
from tutorbook.bookings.lifecycle import Reason
from tutorbook.flows import booking as flows
from tutorbook.payments.port import GatewayError

pytestmark = pytest.mark.service

PENDING, CONFIRMED, CANCELLED = 0, 1, 3


def test_cancelling_before_paying_expires_the_checkout_first_and_again_is_a_no_op(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    done = world.run(flows.cancel_payment(world.svc, parent=p[0], checkout_id=booked.stripe_session_id))
    assert (done.status, done.cancellation_reason) == (CANCELLED, "payment_cancelled")
    assert world.fake.session_of(booked.id).status == "expired"  # it can take no money now
    assert world.fake.called("expire_checkout") == [
        {"checkout_id": booked.stripe_session_id, "reason": "payment_cancelled"}
    ]
    again = world.run(flows.cancel_payment(world.svc, parent=p[0], checkout_id=booked.stripe_session_id))
    assert again.status == CANCELLED and len(world.fake.called("expire_checkout")) == 1
    # Stripe's event about the expiry the app asked for arrives after: nothing changes.
    assert world.deliver_all("checkout.session.expired") == ["no_change"]
    assert [h.to_status for h in world.history(booked.id)] == [PENDING, CANCELLED]
    assert world.fake.payments == {}


def test_the_expired_event_overtaking_the_cancel_keeps_the_parents_reason(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    world.fake.expire_checkout_sync(booked.stripe_session_id, reason="payment_cancelled")  # the app's call...
    assert world.deliver_all("checkout.session.expired") == ["payment_cancelled"]  # ...its event first
    done = world.view(booked.id)
    assert (done.status, done.cancellation_reason) == (CANCELLED, "payment_cancelled")


def test_a_parent_who_paid_meanwhile_cannot_cancel_and_the_payment_confirms(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    world.fake.pay(booked.stripe_session_id)  # paid; the webhook not delivered yet
    with refused(400):
        world.run(flows.cancel_payment(world.svc, parent=p[0], checkout_id=booked.stripe_session_id))
    assert world.view(booked.id).status == CONFIRMED
    assert world.deliver_all("checkout.session.completed") == ["already_fulfilled"]


def test_stripe_unreachable_when_cancelling_leaves_the_booking_pending(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    world.fake.fail_next("expire_checkout", GatewayError("down"))
    with refused(502):
        world.run(flows.cancel_payment(world.svc, parent=p[0], checkout_id=booked.stripe_session_id))
    assert world.view(booked.id).status == PENDING  # its checkout may still take the money
    assert world.fake.session_of(booked.id).status == "open"


def test_another_parent_cannot_cancel_the_checkout(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    with refused(403):
        world.run(flows.cancel_payment(world.svc, parent=world.parent()[0], checkout_id=booked.stripe_session_id))
    with refused(404):
        world.run(flows.cancel_payment(world.svc, parent=p[0], checkout_id="cs_test_unknown"))
    assert world.view(booked.id).status == PENDING


def test_stripe_expiring_the_checkout_cancels_the_booking_once_and_frees_the_slot(world: World):
    t, p = world.teacher(), world.parent()
    start = hours_from_now(48)
    booked = world.book(p, t, starts_at=start)
    assert booked.stripe_session_id is not None
    expired = world.fake.expire_at_stripe(booked.stripe_session_id)
    assert world.deliver(expired) == "checkout_expired"
    assert world.deliver(expired) == "duplicate"
    # An unpaid checkout's end mails nobody, even twice (the payment nudge is dropped as cancelled).
    assert world.mail_sent(booked.id, at=later(1)) == {}
    done = world.view(booked.id)
    assert (done.status, done.cancellation_reason) == (CANCELLED, "checkout_expired")
    assert world.book(world.parent(), t, starts_at=start).status == PENDING


def test_the_expire_job_closes_a_stale_checkout_at_stripe_then_cancels_the_booking(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    assert world.job("expire").counts() == {}  # not stale yet
    result = world.job("expire", at=later(2))
    assert result.counts() == {"checkout_expired": 1}
    done = world.view(booked.id)
    assert (done.status, done.cancellation_reason) == (CANCELLED, "checkout_expired")
    assert world.fake.session_of(booked.id).status == "expired"
    assert world.fake.called("expire_checkout")[0]["reason"] == "checkout_expired"


def test_the_expire_job_confirms_a_stale_checkout_that_was_paid(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    world.fake.pay(booked.stripe_session_id)  # the webhook lost
    assert world.job("expire", at=later(2)).counts() == {"confirmed": 1}
    assert world.view(booked.id).status == CONFIRMED


def test_the_expire_job_with_stripe_down_leaves_the_booking_for_the_next_run(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    world.fake.fail_next("expire_checkout", GatewayError("down"))
    assert world.job("expire", at=later(2)).counts() == {"stripe_unavailable": 1}
    assert world.view(booked.id).status == PENDING
    assert world.job("expire", at=later(2)).counts() == {"checkout_expired": 1}
    assert world.view(booked.id).status == CANCELLED


def test_a_delayed_payment_that_fails_cancels_the_booking(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    assert world.deliver(world.fake.pay_later(booked.stripe_session_id)) == "awaiting_payment"
    assert world.view(booked.id).status == PENDING
    assert world.deliver(world.fake.fail_async(booked.stripe_session_id)) == "payment_failed"
    done = world.view(booked.id)
    assert (done.status, done.cancellation_reason) == (CANCELLED, "payment_failed")


def test_the_jobs_cancel_skips_a_booking_gone_before_it_is_reached(world: World):
    # The jobs list ids, then cancel each in its own transaction: an id no booking has any more
    # (deleted meanwhile) is "skipped", like a booking that left Pending, and the run goes on.
    gone = uuid.uuid4()
    now = hours_from_now(1)
    done = world.svc.tx_sync(
        settling.cancel_if_pending, booking_id=gone, reason=Reason.CHECKOUT_EXPIRED, actor="job:expire", now=now
    )
    assert done == "skipped"
