"""Paying a booking with a credit of the family's wallet (issue #28), and what a cancellation
gives back of one. No Stripe call: the booking is held, the credit drawn and the booking confirmed
in one transaction (the teacher's lock, then the wallet's lot rows: `credits.ledger`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tutorbook.bookings import lifecycle, link_records, outbox, policy
from tutorbook.bookings import repository as repo
from tutorbook.bookings.errors import SlotTaken
from tutorbook.bookings.lifecycle import Reason, Status
from tutorbook.bookings.models import Booking
from tutorbook.bookings.outcomes import Reservation
from tutorbook.bookings.payment_states import PaymentKind
from tutorbook.bookings.reserving import check_slot, parties, terms_of
from tutorbook.bookings.schemas import BookIn
from tutorbook.config import Settings
from tutorbook.credits import ledger
from tutorbook.credits.errors import NoCredit
from tutorbook.credits.models import CreditLot
from tutorbook.identity import AuthUser
from tutorbook.teachers import service as teachers
from tutorbook.teachers.models import TeacherProfile
from tutorbook.teachers.policy import Terms


@dataclass(frozen=True)
class Credited(Reservation):
    """A booking paid with a credit, and what making its meeting link needs besides (no read)."""

    teacher_email: str
    time_zone: str


# A new booking's meeting-link row, asked for before the booking is written (None: the provider
# calls out, the link is made after the commit): given the booking, the teacher's email and name,
# and the teacher's time zone.
LinkRow = Callable[[Booking, str, str, str], Mapping[str, Any] | None]


def book_with_credit(
    session: Session,
    *,
    parent: AuthUser,
    body: BookIn,
    settings: Settings,
    platform: Terms,
    now: datetime,
    link: LinkRow | None = None,
) -> Credited:
    """Hold the slot, draw one credit of this teacher and length, and confirm, in one
    transaction; SlotTaken / NoCredit (409) leave nothing behind. The booking's price is the
    credit's per-lesson price (what was paid for it), its payment a `credit` payment, paid.
    `link`: its meeting link's row, written with it on PostgreSQL (the booking's `meeting` set:
    else the caller makes the link)."""
    profile, teacher_name, teacher_email, student_name = parties(session, parent=parent, body=body, settings=settings)
    start, end = body.starts_at, body.starts_at + timedelta(minutes=body.duration_minutes)
    # The wallet's lots locked next (after the teacher's, as before), so that the slot's statement
    # can tell which lot to draw from: its snapshot is taken after both locks (READ COMMITTED).
    lots = ledger.lock_wallet(
        session, parent_id=parent.id, teacher_id=body.teacher_id, duration_minutes=body.duration_minutes, now=now
    )
    wallet = repo.Wallet(parent.id, body.duration_minutes, now)
    state = check_slot(session, profile=profile, body=body, start=start, end=end, now=now, wallet=wallet)
    if state.clash:
        raise SlotTaken()
    if state.lot is None:
        raise NoCredit()
    # A lot bought since the lock (not among `lots`, so not locked): chosen again, the old way.
    lot = next((held for held in lots if held.id == state.lot), None)
    booking = hold_with_credit(
        session,
        parent=parent,
        body=body,
        platform=platform,
        now=now,
        lot=lot,
        teacher=(profile, teacher_email),
        link=(lambda made: link(made, teacher_email, teacher_name, profile.time_zone)) if link else None,
    )
    return Credited(booking, False, teacher_name, student_name, teacher_email, profile.time_zone)


def hold_with_credit(
    session: Session,
    *,
    parent: AuthUser,
    body: BookIn,
    platform: Terms,
    now: datetime,
    teacher: tuple[TeacherProfile, str] | None = None,
    link: Callable[[Booking], Mapping[str, Any] | None] | None = None,
    lot: CreditLot | None = None,
) -> Booking:
    """A Confirmed booking for `body` (checked, its time free, under the teacher's lock) paid with
    one credit drawn from the wallet (NoCredit, 409, without one): the booking, its draw, its
    `credit` payment, its terms, its confirmation emails. A lone booking's and each week of a
    weekly series paid with credits (issue #29). `teacher`: their profile and email, read
    already (their terms and address are then not read again). On PostgreSQL, with `teacher`, the
    booking, its history, payment and terms, the schedule's version, the draw, the emails (with the
    mail workers' wake-up) and `link`'s row are ONE statement (repository.insert_paid's `along`).
    `lot`: the one to draw from, locked and checked already (else `ledger.pick` chooses)."""
    if lot is None:
        lot = ledger.pick(
            session, parent_id=parent.id, teacher_id=body.teacher_id, duration_minutes=body.duration_minutes, now=now
        )
    booking = Booking(
        id=uuid.uuid4(),
        parent_id=parent.id,
        student_id=body.student_id,
        teacher_id=body.teacher_id,
        subject=body.subject,
        starts_at=body.starts_at,
        ends_at=body.starts_at + timedelta(minutes=body.duration_minutes),
        price_amount=lot.unit_amount,
        currency=lot.currency,
    )
    if teacher is not None:
        in_force = teachers.terms_of(teacher[0], platform=platform)[0]
    else:
        in_force = teachers.terms(session, teacher_id=body.teacher_id, platform=platform)[0]
    terms = policy.to_store(in_force)
    # Made and paid at once: the state machine's two moves (booked, paid), written as one row.
    changes = [
        lifecycle.book(now=now),
        lifecycle.confirm_payment(Status.PENDING, now=now, payment_intent_id=None, terms=terms),
    ]
    kinds = ("confirmed.parent", "confirmed.teacher")
    addresses = {parent.id: parent.email, body.teacher_id: teacher[1]} if teacher else None
    if teacher is not None and session.get_bind().dialect.name == "postgresql":
        assert addresses is not None
        notices = outbox.rows(booking, kinds, version=len(changes), now=now, addresses=addresses)
        link_row = link(booking) if link else None
        along: list[tuple[str, Sequence[Mapping[str, Any]]]] = [
            ("entry", [ledger.draw_row(lot, booking_id=booking.id, actor=parent.actor, now=now)]),
            *([("notice", notices)] if notices else []),
            *([("link", [link_row])] if link_row is not None else []),
        ]
        repo.insert_paid(session, booking, changes, actor=parent.actor, kind=PaymentKind.CREDIT, along=along)
        if notices is None:
            outbox.notify(session, booking, kinds, now=now, addresses=addresses)
        if link_row is not None:
            link_records.known(booking, link_row)
        return booking
    repo.insert_paid(session, booking, changes, actor=parent.actor, kind=PaymentKind.CREDIT)
    ledger.draw(
        session,
        parent_id=parent.id,
        teacher_id=body.teacher_id,
        duration_minutes=body.duration_minutes,
        booking_id=booking.id,
        actor=parent.actor,
        now=now,
        lot=lot,
    )
    outbox.notify(session, booking, kinds, now=now, addresses=addresses)
    if link is not None and (link_row := link(booking)) is not None:
        link_records.write_link(session, booking.id, link_row, without_url=True, booking=booking)
    return booking


def credits_for(session: Session, *, parent_id: uuid.UUID, teacher_id: uuid.UUID, minutes: int, now: datetime) -> int:
    """How many credits of this teacher and length the family can book with now."""
    return ledger.available(session, parent_id=parent_id, teacher_id=teacher_id, duration_minutes=minutes, now=now)


def paid_with_credit(booking: Booking) -> bool:
    return booking.payment is not None and booking.payment.kind == PaymentKind.CREDIT.value


def credit_comes_back(booking: Booking, *, reason: Reason, settings: Settings, now: datetime) -> bool:
    """Whether cancelling this credit-paid lesson by `reason` now returns its credit: when the
    terms in force would refund a paid lesson in full (a teacher's or an operator's always)."""
    terms = terms_of(booking, settings=settings)
    return policy.full_refund_due(
        reason=reason, starts_at=booking.starts_at, now=now, full_before_hours=terms.full_refund_hours
    )


def return_credit(session: Session, booking: Booking, *, actor: str, reason: str, now: datetime) -> bool:
    """Give the booking's credit back (a `return` entry), once; True when given back now."""
    return ledger.give_back(session, booking_id=booking.id, actor=actor, now=now, reason=reason) is not None


__all__ = [
    "Credited",
    "LinkRow",
    "book_with_credit",
    "credit_comes_back",
    "credits_for",
    "hold_with_credit",
    "paid_with_credit",
    "return_credit",
]
