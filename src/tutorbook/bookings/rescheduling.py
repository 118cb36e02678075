"""Moving a Confirmed booking to another time: who may and until when (the lifecycle's table,
the booking's stored terms), then one compare-and-set under the teacher's lock."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tutorbook.bookings import lifecycle
from tutorbook.bookings import repository as repo
from tutorbook.bookings.errors import SlotTaken
from tutorbook.bookings.lifecycle import Move, NoReschedule, Status
from tutorbook.bookings.lookup import get_for
from tutorbook.bookings.models import Booking
from tutorbook.bookings.outcomes import Followups, Moved
from tutorbook.bookings.reserving import check_offered, start_problems, terms_of
from tutorbook.config import Settings
from tutorbook.errors import Conflict, NotFound, Unprocessable
from tutorbook.identity import AuthUser
from tutorbook.notifications import service as notices


def why_not_reschedule(
    booking: Booking, *, user: AuthUser, settings: Settings, now: datetime
) -> NoReschedule | None:
    """Why `user` cannot change this booking's time now (the pages hide the button and say
    why), or None when they can."""
    terms = terms_of(booking, settings=settings)
    return lifecycle.why_not_reschedule(
        Status(booking.status),
        role=user.role,
        now=now,
        starts_at=booking.starts_at,
        count=booking.reschedule_count,
        deadline_hours=terms.reschedule_deadline_hours,
        max_reschedules=terms.max_reschedules,
    )


def _check_new_start(start: datetime, *, now: datetime) -> None:
    if problems := start_problems(start, now=now):
        raise Unprocessable("The session cannot be moved to this time", data=problems)


def reschedule(
    session: Session, *, user: AuthUser, booking_id: uuid.UUID, starts_at: datetime, settings: Settings, now: datetime
) -> Moved:
    """Move a Confirmed booking to `starts_at`, same teacher, length, price and payment: under
    the teacher's lock, the lifecycle's rules (from the booking's stored terms), the teacher's
    hours and no overlap, one compare-and-set with its history row, and both sides' notices."""
    booking = get_for(session, user=user, booking_id=booking_id)
    _check_new_start(starts_at, now=now)
    found = repo.teacher_for_booking(session, booking.teacher_id, lock=settings.booking_guard)
    if found is None:
        raise NotFound("Teacher not found")
    profile = found[0]
    session.refresh(booking)  # as it is now that the teacher's bookings are ours to change
    if booking.status == Status.CONFIRMED and booking.starts_at == starts_at:
        return Moved("unchanged", booking)
    terms = terms_of(booking, settings=settings)
    move: Move = lifecycle.reschedule(
        Status(booking.status),
        role=user.role,
        now=now,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        new_start=starts_at,
        count=booking.reschedule_count,
        deadline_hours=terms.reschedule_deadline_hours,
        max_reschedules=terms.max_reschedules,
    )
    check_offered(session, profile=profile, start=move.to_start, end=move.to_end)
    if repo.overlapping(
        session, teacher_id=booking.teacher_id, start=move.to_start, end=move.to_end, exclude=booking.id
    ):
        raise SlotTaken()
    if not repo.move(session, booking, move, actor=user.actor):
        raise Conflict("The booking changed meanwhile; reload and try again")
    # Moves in quick succession are told once, of the last one (and from where it was before the first).
    notices.change_notice(
        session,
        booking_id=booking.id,
        recipients={"rescheduled.parent": booking.parent_id, "rescheduled.teacher": booking.teacher_id},
        version=repo.version(session, booking.id),
        payload={"from": move.from_start.isoformat(), "by": str(user.role)},
        window=timedelta(seconds=settings.mail_change_window_seconds),
        now=now,
    )
    followups = Followups(moves=[booking.id]) if booking.meeting_url else Followups()
    return Moved("rescheduled", booking, move.from_start, followups)
