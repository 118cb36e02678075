"""A card series' later weeks, paid one at a time (issue #29): the use cases the `series` job
runs around its Stripe calls, each one transaction taking `now`. Claim a week whose charge is due
(once), then record what Stripe said: paid (the booking confirms as any paid booking does), or
failed (the parent is emailed a link to pay that one lesson by its deadline). A week not paid by
its deadline is cancelled alone; weeks of a series whose first checkout was never paid are
cancelled (no card was saved)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tutorbook.bookings import lookup, outbox, settling
from tutorbook.bookings.lifecycle import Reason, Status
from tutorbook.bookings.models import Booking
from tutorbook.bookings.outcomes import Outcome
from tutorbook.bookings.payment_states import PaymentKind
from tutorbook.config import Settings
from tutorbook.errors import Conflict, Forbidden, NotFound
from tutorbook.identity import AuthUser
from tutorbook.series import repository as repo
from tutorbook.teachers.policy import Terms

ACTOR = "job:series"


@dataclass(frozen=True)
class Charge:
    """A week claimed for its off-session charge: what to charge, to whom."""

    booking_id: uuid.UUID
    customer: str
    amount: int
    currency: str


def due(session: Session, *, now: datetime, limit: int) -> list[uuid.UUID]:
    """The reserved weeks whose charge is due by `now` and not yet tried."""
    return [b.id for _, b, _ in repo.due_charges(session, now=now, limit=limit)]


def claim(session: Session, *, booking_id: uuid.UUID, now: datetime) -> Charge | str:
    """Claim a due week's charge (once), or say why not: "waiting" (the first week is not paid
    yet: no card saved), "skipped" (paid, cancelled or claimed meanwhile)."""
    found = repo.of_booking(session, booking_id)
    booking = lookup.must_get(session, booking_id=booking_id)
    payment = booking.payment
    if found is None or booking.status != Status.PENDING or payment is None:
        return "skipped"
    if payment.kind != PaymentKind.OFF_SESSION:
        return "skipped"
    series, _ = found
    first = repo.first_booking(session, series.id)
    if first is None or first.paid_at is None or series.stripe_customer_id is None:
        return "waiting"
    if not repo.claim(session, booking_id=booking_id, now=now):
        return "skipped"
    return Charge(
        booking_id=booking.id,
        customer=series.stripe_customer_id,
        amount=booking.price_amount,
        currency=booking.currency,
    )


def unclaim(session: Session, *, booking_id: uuid.UUID) -> None:
    """Stripe could not be reached: the week's charge is tried again on the next run."""
    repo.unclaim(session, booking_id=booking_id)


def paid(session: Session, *, booking_id: uuid.UUID, payment_intent: str, platform: Terms, now: datetime) -> Outcome:
    """The card paid: the week confirms as a paid booking does (its terms, emails, meeting link)."""
    return settling.confirm_charged(
        session, booking_id=booking_id, payment_intent=payment_intent, actor=ACTOR, platform=platform, now=now
    )


def pay_url(settings: Settings, booking_id: uuid.UUID) -> str:
    """The emailed link to pay one lesson whose card charge failed."""
    return f"{settings.public_url.rstrip('/')}/series/lessons/{booking_id}/pay"


def failed(session: Session, *, booking_id: uuid.UUID, failure: str, settings: Settings, now: datetime) -> str:
    """The charge was declined or needs the parent: a link to pay this lesson by its deadline,
    emailed to the parent; past the deadline already, the lesson is cancelled at once."""
    booking = lookup.must_get(session, booking_id=booking_id)
    deadline = booking.starts_at - timedelta(hours=settings.series_pay_deadline_hours)
    repo.set_failure(session, booking_id=booking_id, failure=failure, deadline=deadline)
    if deadline <= now:
        return cancel_overdue(session, booking_id=booking_id, now=now)
    payload = {"link": pay_url(settings, booking_id), "deadline": deadline.isoformat(), "failure": failure}
    outbox.notify(session, booking, ("series_payment_due.parent",), now=now, payload=payload)
    return failure


def cancel_overdue(session: Session, *, booking_id: uuid.UUID, now: datetime) -> str:
    """Not paid by its deadline: this lesson alone is cancelled and its time freed."""
    done = settling.cancel_if_pending(
        session, booking_id=booking_id, reason=Reason.PAYMENT_FAILED, actor=ACTOR, now=now
    )
    if done != "skipped":
        booking = lookup.must_get(session, booking_id=booking_id)
        payload = {"refund": 0, "reason": Reason.PAYMENT_FAILED.value, "by": "job"}
        outbox.notify(session, booking, ("cancelled.parent", "cancelled.teacher"), now=now, payload=payload)
        return "cancelled_unpaid"
    return done


def overdue(session: Session, *, now: datetime, limit: int) -> list[uuid.UUID]:
    return repo.overdue(session, now=now, limit=limit)


def abandoned(session: Session, *, limit: int) -> list[uuid.UUID]:
    return repo.abandoned(session, limit=limit)


def cancel_abandoned(session: Session, *, booking_id: uuid.UUID, now: datetime) -> str:
    """A week of a series whose first checkout was never paid: cancelled (nothing was charged)."""
    done = settling.cancel_if_pending(
        session, booking_id=booking_id, reason=Reason.PAYMENT_CANCELLED, actor=ACTOR, now=now
    )
    return "abandoned" if done != "skipped" else done


# -- the link: one lesson's own checkout ---------------------------------------------------


def payable(session: Session, *, parent: AuthUser, booking_id: uuid.UUID, now: datetime) -> Booking:
    """A lesson of the parent's whose card charge failed and that may still be paid now; 404, 403,
    then 409 when it is paid, cancelled or past its deadline."""
    found = repo.of_booking(session, booking_id)
    if found is None:
        raise NotFound("This lesson is not part of a series")
    series, occurrence = found
    if series.parent_id != parent.id:
        raise Forbidden("This lesson is not yours")
    booking = lookup.must_get(session, booking_id=booking_id)
    if booking.status != Status.PENDING:
        raise Conflict("This lesson is no longer waiting for payment")
    if occurrence.charge_failure is None or occurrence.pay_deadline_at is None:
        raise Conflict("This lesson's card has not been charged yet; nothing to pay now")
    if occurrence.pay_deadline_at <= now:
        raise Conflict("The time to pay this lesson has passed")
    return booking


def deadline_of(session: Session, *, booking_id: uuid.UUID) -> datetime | None:
    found = repo.of_booking(session, booking_id)
    return None if found is None else found[1].pay_deadline_at
