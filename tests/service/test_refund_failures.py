"""A refund Stripe cannot take now is sent again, with the same key, until it can; one Stripe
refuses is not lost: what is left of the charge is asked for instead."""

from __future__ import annotations

import pytest

from tests.service.world import World, hours_from_now, later
from tutorbook.flows import booking as flows
from tutorbook.payments.port import GatewayError, GatewayTimeout

pytestmark = pytest.mark.service

CANCELLED = 3


@pytest.mark.parametrize("error", [GatewayError("down"), GatewayTimeout("timed out")])
def test_a_refund_stripe_could_not_take_is_sent_again_by_reconcile_with_the_same_key(world: World, error):
    t, p = world.teacher(rate=6000), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    world.fake.fail_next("refund", error)
    done = world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    assert done.status == CANCELLED
    assert world.refunds(paid.id) == [(6000, "pending")] and world.stripe_refunds(paid.id) == []
    assert world.job("reconcile").counts().get("refund_succeeded") is None  # too young to resend yet
    assert world.job("reconcile", at=later(1)).counts().get("refund_succeeded") == 1
    assert world.refunds(paid.id) == [(6000, "succeeded")]
    assert world.view(paid.id).refunded_amount == 6000
    first, second = world.fake.called("refund")
    assert first["key"] == second["key"] and len(world.fake.refunds) == 1
    assert world.job("reconcile", at=later(1)).counts().get("refund_succeeded") is None  # nothing left to send


def test_a_refund_refused_because_part_was_refunded_in_the_dashboard_asks_for_the_rest(world: World):
    t, p = world.teacher(rate=6000), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    assert paid.stripe_payment_intent_id is not None
    world.fake.refund_in_dashboard(paid.stripe_payment_intent_id, 1000)  # the event lost
    done = world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    assert done.status == CANCELLED
    assert world.refunds(paid.id) == [(6000, "failed"), (5000, "succeeded")]
    assert world.fake.payments[paid.stripe_payment_intent_id].left == 0  # the parent has it all back
    assert world.view(paid.id).refunded_amount == 6000


def test_a_refund_stripe_is_still_processing_is_not_sent_again(world: World):
    t, p = world.teacher(rate=6000), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    world.fake.refund_status = "pending"  # Stripe's word for "processing"
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    assert world.refunds(paid.id) == [(6000, "processing")]  # accepted by Stripe, not our outbox's "pending"
    world.job("reconcile", at=later(1))
    assert len(world.fake.called("refund")) == 1 and len(world.fake.refunds) == 1
