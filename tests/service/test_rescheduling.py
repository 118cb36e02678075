"""Moving a paid booking: same payment, same price, no call to Stripe; the terms' deadline and
count, the teacher's hours and other bookings decide."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.service.world import World, hours_from_now, refused
from tutorbook.flows import booking as flows

pytestmark = pytest.mark.service

PENDING, CONFIRMED = 0, 1
DAY = timedelta(days=1)


def test_a_parent_moves_a_paid_booking_before_the_deadline_without_touching_the_payment(world: World):
    t, p = world.teacher(), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(72))
    calls = len(world.fake.calls)
    moved = world.run(flows.reschedule(world.svc, user=p[0], booking_id=paid.id, starts_at=paid.starts_at + DAY))
    assert (moved.status, moved.starts_at, moved.ends_at) == (CONFIRMED, paid.starts_at + DAY, paid.ends_at + DAY)
    assert (moved.price_amount, moved.stripe_payment_intent_id, moved.reschedule_count) == (
        paid.price_amount,
        paid.stripe_payment_intent_id,
        1,
    )
    last = world.history(paid.id)[-1]
    assert (last.moved_from, last.moved_to) == (paid.starts_at, paid.starts_at + DAY)
    assert len(world.fake.calls) == calls  # Stripe is not asked
    assert world.book(world.parent(), t, starts_at=paid.starts_at).status == PENDING  # the old time is free


def test_no_move_after_the_deadline_nor_beyond_the_count(world: World):
    t, p = world.teacher(reschedule_deadline_hours=24, max_reschedules=1), world.parent()
    soon = world.book_and_pay(p, t, starts_at=hours_from_now(10))
    with refused(409) as caught:
        world.run(flows.reschedule(world.svc, user=p[0], booking_id=soon.id, starts_at=soon.starts_at + DAY))
    assert "24" in str(caught[0])
    later = world.book_and_pay(p, t, starts_at=hours_from_now(96))
    world.run(flows.reschedule(world.svc, user=p[0], booking_id=later.id, starts_at=later.starts_at + DAY))
    with refused(409):
        world.run(flows.reschedule(world.svc, user=p[0], booking_id=later.id, starts_at=later.starts_at + 2 * DAY))
    assert world.view(later.id).starts_at == later.starts_at + DAY


def test_no_move_onto_another_booking_nor_of_an_unpaid_one(world: World):
    t, p = world.teacher(), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(72))
    other = world.book(p, t, starts_at=paid.starts_at + DAY)  # Pending: it holds its slot too
    with refused(409):
        world.run(flows.reschedule(world.svc, user=p[0], booking_id=paid.id, starts_at=other.starts_at))
    with refused(409):
        world.run(flows.reschedule(world.svc, user=p[0], booking_id=other.id, starts_at=other.starts_at + DAY))
    assert world.view(paid.id).starts_at == paid.starts_at
