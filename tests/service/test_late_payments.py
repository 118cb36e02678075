"""A payment that succeeds after its booking was cancelled unpaid (a delayed payment settling after
the checkout expired by our clock): confirmed if the slot is still free and ahead, otherwise
refunded in full; either way once, and recorded."""

from __future__ import annotations

import pytest

from tests.service.world import World, hours_from_now, later
from tutorbook.flows import booking as flows

pytestmark = pytest.mark.service

PENDING, CONFIRMED, CANCELLED = 0, 1, 3


def cancelled_while_payment_pending(world: World, *, hours: float = 48):
    """A booking whose parent chose a delayed payment method, expired by the job meanwhile."""
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(hours))
    assert booked.stripe_session_id is not None
    assert world.deliver(world.fake.pay_later(booked.stripe_session_id)) == "awaiting_payment"
    assert world.job("expire", at=later(2)).counts() == {"checkout_expired": 1}
    assert world.view(booked.id).status == CANCELLED
    return t, booked


def test_a_late_payment_for_a_slot_still_free_confirms_the_booking(world: World):
    t, booked = cancelled_while_payment_pending(world)
    assert booked.stripe_session_id is not None
    assert world.deliver(world.fake.settle_async(booked.stripe_session_id)) == "late_payment_confirmed"
    paid = world.view(booked.id)
    assert paid.status == CONFIRMED and paid.paid_at is not None and paid.meeting_url
    assert [h.to_status for h in world.history(booked.id)] == [PENDING, CANCELLED, CONFIRMED]
    assert world.fake.refunds == []


def test_a_late_payment_for_a_slot_taken_meanwhile_is_refunded_in_full_once(world: World):
    t, booked = cancelled_while_payment_pending(world)
    assert booked.stripe_session_id is not None
    other = world.book_and_pay(world.parent(), t, starts_at=booked.starts_at)
    settled = world.fake.settle_async(booked.stripe_session_id)
    assert world.deliver(settled) == "late_payment_refunded"
    assert world.deliver(settled) == "duplicate"
    page = world.run(world_fulfil(world, booked.id))
    assert page == "already_refunded"
    late = world.view(booked.id)
    assert late.status == CANCELLED and late.refunded_amount == late.price_amount
    assert world.refunds(booked.id) == [(late.price_amount, "succeeded")]
    assert world.stripe_refunds(booked.id) == [late.price_amount]
    assert world.view(other.id).status == CONFIRMED
    sent = world.mail_sent(booked.id)
    assert sent.get("late_payment_refunded.parent") == 1 and "confirmed.parent" not in sent, sent
    world.deliver(settled)
    assert world.mail_sent(booked.id)["late_payment_refunded.parent"] == 1


def test_a_late_payment_whose_webhook_was_lost_is_found_by_reconcile(world: World):
    t, booked = cancelled_while_payment_pending(world)
    assert booked.stripe_session_id is not None
    world.fake.settle_async(booked.stripe_session_id)  # the event never arrives
    found = world.job("reconcile", at=later(2))
    assert found.counts().get("late_payment_confirmed") == 1, found.counts()
    assert world.view(booked.id).status == CONFIRMED
    assert world.job("reconcile", at=later(2)).counts().get("late_payment_confirmed") is None


async def world_fulfil(world: World, booking_id) -> str:
    """The success page or a job seeing the same payment once more: the one fulfilment's kind."""
    return (await flows.fulfil(world.svc, checkout=world.fake.checkout(booking_id), actor="job:test")).kind


def a_foreign_checkout_paid_for(world: World, booking_id) -> str:
    """Someone holding the Stripe key makes a checkout naming the booking (not the one the
    booking created) and pays it: refused as `other_checkout` and refunded in full."""
    import dataclasses

    own = world.fake.session_of(booking_id)
    foreign = dataclasses.replace(
        own, id=f"{own.id}_foreign", status="open", payment_status="unpaid", payment_intent=None
    )
    world.fake.sessions[foreign.id] = foreign
    assert world.deliver(world.fake.pay(foreign.id)) == "other_checkout"
    return foreign.id


def test_a_refused_payments_refund_is_not_the_late_payments_refund(world: World):
    # The booking holds a refund already, of a payment through another checkout (reason
    # `other_checkout`), when its own delayed payment settles after it was cancelled unpaid: that
    # refund is no answer to the late payment, which is still confirmed (its slot is free).
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    assert world.deliver(world.fake.pay_later(booked.stripe_session_id)) == "awaiting_payment"
    a_foreign_checkout_paid_for(world, booked.id)
    assert world.refunds(booked.id) == [(booked.price_amount, "succeeded")]
    assert world.job("expire", at=later(2)).counts() == {"checkout_expired": 1}
    assert world.view(booked.id).status == CANCELLED
    assert world.deliver(world.fake.settle_async(booked.stripe_session_id)) == "late_payment_confirmed"
    assert world.view(booked.id).status == CONFIRMED
    assert world.refunds(booked.id) == [(booked.price_amount, "succeeded")]  # the foreign payment's alone


@pytest.mark.parametrize("reason", ["amount_mismatch", "currency_mismatch"])
def test_a_refund_for_a_payment_at_another_price_or_currency_is_no_late_payment_refund(world: World, reason: str):
    # Those reasons sort before "late_payment", other_checkout (above) after it: only a refund
    # asked for the late payment itself stops a late payment being handled again.
    from tutorbook.bookings import refunds

    t, p = world.teacher(rate=6000), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    own = world.fake.session_of(booked.id)
    if reason == "amount_mismatch":
        own.amount = 100
    else:
        own.currency = "eur"
    assert world.deliver(world.fake.pay(own.id)) == reason
    asked = world.svc.tx_sync(lambda s: [r.reason for r in refunds.for_booking(s, booking_id=booked.id)])
    assert asked == [reason]
    assert world.svc.tx_sync(refunds.has_late_payment_refund, booking_id=booked.id) is False
