"""Bookings beside the teachers' own calendars: a paid session a calendar has since made busy is
told to the teacher (once) and marked on the schedule, never cancelled; and, for the teacher,
why a time is not offered."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tutorbook.bookings import queries, reserving
from tutorbook.bookings import repository as repo
from tutorbook.calendars import service as calendars
from tutorbook.notifications import service as notices
from tutorbook.teachers import service as teachers

CONFLICT_KIND = "calendar_conflict.teacher"


def note_conflicts(session: Session, *, teacher_id: uuid.UUID, now: datetime) -> int:
    """Write one email to the teacher for each paid session ahead that a busy period of their
    calendars overlaps; the booking is left as it is. Once per booking and time (the outbox's
    uniqueness: a moved session that clashes again is told again). How many were new."""
    written = 0
    for booking, period in queries.calendar_conflicts(session, teacher_id=teacher_id, after=now):
        written += notices.booking_notice(
            session,
            booking_id=booking.id,
            recipients={CONFLICT_KIND: teacher_id},
            version=booking.reschedule_count,
            payload={"busyFrom": period.starts_at.isoformat(), "busyTo": period.ends_at.isoformat()},
            now=now,
        )
    return written


def conflicting(
    session: Session, *, teacher_id: uuid.UUID, booking_ids: Sequence[uuid.UUID], now: datetime
) -> set[uuid.UUID]:
    """Which of these sessions (Confirmed, not over) overlap a busy period of the teacher's calendars."""
    if not booking_ids:
        return set()
    found = queries.calendar_conflicts(session, teacher_id=teacher_id, after=now, booking_ids=booking_ids)
    return {booking.id for booking, _ in found}


@dataclass(frozen=True)
class Hidden:
    """One rule that keeps a time from being offered. `starts_at`/`ends_at`: the thing in the way."""

    rule: str  # "start", "hours", "time_off", "booking", "calendar"
    message: str
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    calendar: str | None = None  # the calendar's masked address, for "calendar"


def why_not(session: Session, *, teacher_id: uuid.UUID, start: datetime, minutes: int, now: datetime) -> list[Hidden]:
    """Every rule that keeps [start, start + minutes) from being offered (empty: it is offered)."""
    profile = teachers.get_profile(session, teacher_id)
    end = start + timedelta(minutes=minutes)
    out = [Hidden("start", f"The start {p['message']}") for p in reserving.start_problems(start, now=now)]
    if not reserving.offered(session, profile=profile, start=start, end=end):
        out.append(Hidden("hours", "It is not inside one of your weekly windows of hours"))
    for t in teachers.time_off(session, teacher_id, start=start, end=end):
        out.append(Hidden("time_off", f"You are away: {t.note or 'time off'}", t.starts_at, t.ends_at))
    for b in repo.overlapping(session, teacher_id=teacher_id, start=start, end=end):
        state = "a paid session" if b.paid_at is not None else "a booking waiting for its payment"
        out.append(Hidden("booking", f"It overlaps {state} ({b.subject})", b.starts_at, b.ends_at))
    for period, calendar in calendars.busy_detail(session, teacher_id, start=start, end=end):
        out.append(
            Hidden("calendar", f"Your calendar {calendar} is busy then", period.starts_at, period.ends_at, calendar)
        )
    return out
