"""Reconcile's repairs that move money (jobs/reconcile.py): a payment that cannot pay for its
booking, its webhook lost, is refunded by reconcile (not only reported); a destination charge's
split that changed at Stripe since it was recorded is recorded again, and a dry run records nothing."""

from __future__ import annotations

import pytest

from tests.service.world import World, hours_from_now, later
from tutorbook.flows import booking as flows

pytestmark = pytest.mark.service

PENDING = 0


def test_a_payment_at_another_price_whose_webhook_was_lost_is_refunded_by_reconcile(world: World):
    b = world.book(world.parent(), world.teacher(rate=6000), starts_at=hours_from_now(48))
    assert b.stripe_session_id is not None
    world.fake.sessions[b.stripe_session_id].amount = 5000  # paid, but not the booking's price
    world.fake.pay(b.stripe_session_id)
    found = world.job("reconcile", at=later(0.1))
    assert [str(i.kind) for i in found.items] == ["amount_mismatch"]
    assert world.stripe_refunds(b.id) == [5000]  # all of it back, at once
    assert world.view(b.id).status == PENDING
    assert [str(i.kind) for i in world.job("reconcile", at=later(0.2)).items] == []


def test_a_split_changed_at_stripe_is_recorded_again_and_a_dry_run_records_nothing(world: World):
    t = world.payable_teacher(rate=6000, late_refund_percent=50)
    p = world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(5))
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))  # half back
    before = world.earning(t, paid.id)
    payment = world.fake.payments[str(paid.stripe_payment_intent_id)]
    payment.fee_refunded = payment.fee_amount  # the rest of the fee returned at Stripe, the app not told
    world.job("reconcile", at=later(0.1), dry_run=True)
    assert world.earning(t, paid.id) == before
    world.job("reconcile", at=later(0.1))
    after = world.earning(t, paid.id)
    assert (after.fee, after.net) == (0, 3000)  # the teacher now carries none of the fee
