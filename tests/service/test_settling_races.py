"""Fulfilment's answers when another writer moved the booking first (`bookings/settling.py`),
without HTTP. The other writer is played inside the very wait it races with: its move is written
in the test's own transaction just when `settling` waits for the teacher's lock or makes its
compare-and-set, as a transaction committing in that instant would leave the row. And a checkout
that names a booking without being its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.service.world import World, hours_from_now, later
from tutorbook.bookings import repository, settling
from tutorbook.bookings.errors import AlreadyPaid
from tutorbook.bookings.lifecycle import Reason
from tutorbook.bookings.models import Booking, Payment
from tutorbook.notifications.models import Notification

pytestmark = pytest.mark.service

PENDING, CONFIRMED, CANCELLED = 0, 1, 3


def moved_meanwhile(monkeypatch, step: str, booking_id: uuid.UUID, model: Any = Booking, **values: Any) -> None:
    """The next `repository.<step>` call finds the booking (or its `model=Payment` row) already
    moved to `values` by another writer."""
    real = getattr(repository, step)
    done: list[bool] = []

    def racing(session, *args: Any, **kwargs: Any):
        if not done:
            done.append(True)
            key = model.id if model is Booking else model.booking_id
            session.execute(sa.update(model).where(key == booking_id).values(**values))
        return real(session, *args, **kwargs)

    monkeypatch.setattr(repository, step, racing)


def cancelled_unpaid_with_payment_pending(world: World):
    t, p = world.teacher(), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    assert world.deliver(world.fake.pay_later(booked.stripe_session_id)) == "awaiting_payment"
    assert world.job("expire", at=later(2)).counts() == {"checkout_expired": 1}
    return booked


def test_a_cancel_of_an_unpaid_booking_that_was_paid_meanwhile_is_refused_as_already_paid(world: World, monkeypatch):
    booked = world.book(world.parent(), world.teacher(), starts_at=hours_from_now(48))
    paid_at = datetime.now(UTC)
    moved_meanwhile(monkeypatch, "apply", booked.id, status=CONFIRMED, paid_at=paid_at)
    with pytest.raises(AlreadyPaid):
        world.svc.tx_sync(
            settling.cancel_unpaid, booking_id=booked.id, reason=Reason.PAYMENT_CANCELLED, actor="parent", now=paid_at
        )
    monkeypatch.undo()
    # Nothing of the cancel was written (the raise rolled the transaction back) ...
    assert world.view(booked.id).status == PENDING
    assert [h.to_status for h in world.history(booked.id)] == [PENDING]

    # ... and once the payment is committed, the cancel is refused the same, before any write.
    def commit_the_payment(session) -> None:
        session.execute(sa.update(Booking).where(Booking.id == booked.id).values(status=CONFIRMED, paid_at=paid_at))

    world.svc.tx_sync(commit_the_payment)
    with pytest.raises(AlreadyPaid):
        world.svc.tx_sync(
            settling.cancel_unpaid, booking_id=booked.id, reason=Reason.PAYMENT_CANCELLED, actor="parent", now=paid_at
        )
    assert world.view(booked.id).status == CONFIRMED


def test_an_unpaid_cancel_that_wins_is_done_once_and_a_second_is_a_no_op(world: World):
    booked = world.book(world.parent(), world.teacher(), starts_at=hours_from_now(48))
    now = datetime.now(UTC)
    for _ in range(2):
        done = world.svc.tx_sync(
            _cancel_status, booking_id=booked.id, reason=Reason.PAYMENT_CANCELLED, actor="parent", now=now
        )
        assert done == CANCELLED
    assert [h.to_status for h in world.history(booked.id)] == [PENDING, CANCELLED]


def _cancel_status(session: Session, /, **kwargs: Any) -> int:
    return int(settling.cancel_unpaid(session, **kwargs).status)


def test_a_late_payment_seen_while_another_path_settled_the_booking_is_already_fulfilled(world: World, monkeypatch):
    # The late payment confirmed the booking by another path (reconcile, the success page), and
    # the parent then cancelled it: Cancelled, paid, and no late-payment refund. This delivery,
    # waiting for the teacher's lock meanwhile, must not confirm it again nor refund it.
    booked = cancelled_unpaid_with_payment_pending(world)
    assert booked.stripe_session_id is not None
    moved_meanwhile(monkeypatch, "lock_teacher", booked.id, paid_at=datetime.now(UTC))
    assert world.deliver(world.fake.settle_async(booked.stripe_session_id)) == "already_fulfilled"
    monkeypatch.undo()
    after = world.view(booked.id)
    assert after.status == CANCELLED and after.paid_at is not None
    assert [h.to_status for h in world.history(booked.id)] == [PENDING, CANCELLED]
    assert world.refunds(booked.id) == [] and world.fake.refunds == []
    assert "confirmed.parent" not in world.mail_sent(booked.id)


@pytest.mark.parametrize("checkout_id", ["cs_a_before", "cs_z_after"])  # sorting before and after the booking's own
def test_an_unpaid_checkout_that_names_a_booking_but_is_not_its_own_is_no_booking(world: World, checkout_id: str):
    booked = world.book(world.parent(), world.teacher(rate=6000), starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None and "cs_a_before" < booked.stripe_session_id < "cs_z_after"
    other: dict[str, Any] = {
        "id": checkout_id, "object": "checkout.session", "mode": "payment", "status": "complete",
        "payment_status": "unpaid", "url": None, "payment_intent": None, "amount_total": 6000,
        "currency": "usd", "client_reference_id": str(booked.id), "metadata": {"booking_id": str(booked.id)},
        "expires_at": 1_900_000_000, "created": 1_800_000_000,
    }  # fmt: skip
    assert world.deliver(world.fake._emit("checkout.session.completed", other)) == "unknown_booking"
    # Its own checkout, unpaid (a delayed payment method), is awaited.
    assert world.deliver(world.fake.pay_later(booked.stripe_session_id)) == "awaiting_payment"
    assert world.view(booked.id).status == PENDING


def test_a_refused_payment_names_the_problem_seen_under_the_lock(world: World, monkeypatch):
    # A payment at another price through the booking's own checkout; while its refusal waited for
    # the teacher's lock, the booking recorded a newer checkout: refused as another checkout's.
    t, p = world.teacher(rate=6000), world.parent()
    booked = world.book(p, t, starts_at=hours_from_now(48))
    world.fake.session_of(booked.id).amount = 100
    moved_meanwhile(monkeypatch, "lock_teacher", booked.id, Payment, stripe_checkout_id="cs_test_newer")
    assert world.deliver(world.fake.pay(str(booked.stripe_session_id))) == "other_checkout"
    monkeypatch.undo()
    after = world.view(booked.id)
    assert after.status == PENDING and after.paid_at is None
    assert world.stripe_refunds(booked.id) == [100]


def _charged(session: Session, /, **kwargs: Any) -> tuple[str, list[uuid.UUID], int]:
    outcome = settling.confirm_charged(session, actor="job:series", platform=kwargs.pop("platform"), **kwargs)
    assert outcome.booking is not None
    return str(outcome.kind), list(outcome.followups.links), int(outcome.booking.status)


def test_a_week_charged_off_session_confirms_once_with_its_mails_and_meeting_link_asked(world: World):
    # A series' later week charged with the saved card (series/charging.paid -> confirm_charged).
    booked = world.book(world.parent(), world.teacher(rate=6000), starts_at=hours_from_now(48))
    now = datetime.now(UTC)
    kwargs: dict[str, Any] = {"booking_id": booked.id, "payment_intent": "pi_week", "platform": world.svc.terms}
    assert world.svc.tx_sync(_charged, now=now, **kwargs) == ("confirmed", [booked.id], CONFIRMED)
    assert world.svc.tx_sync(_charged, now=now, **kwargs) == ("already_fulfilled", [], CONFIRMED)
    assert world.view(booked.id).paid_at is not None
    # Each side's confirmation queued once (sent by the mail job once the meeting link is made).
    kinds = world.svc.tx_sync(
        lambda s: list(s.scalars(sa.select(Notification.kind).where(Notification.booking_id == booked.id)))
    )
    queued = sorted(k for k in kinds if k.startswith("confirmed."))
    assert queued == ["confirmed.parent", "confirmed.teacher"]
