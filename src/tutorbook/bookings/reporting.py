"""What is read around bookings: reminders due, a parent's unpaid holds, a teacher's free times
and bookable starts, the sessions inside time off; and the checks on removing a child."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tutorbook.accounts import service as accounts
from tutorbook.bookings import lists
from tutorbook.bookings import repository as repo
from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.models import Booking
from tutorbook.calendars import service as calendars
from tutorbook.errors import Conflict
from tutorbook.notifications import service as notices
from tutorbook.teachers import service as teachers
from tutorbook.teachers import slots
from tutorbook.teachers.models import TimeOff

REMINDER_HOURS = (24, 1)
# A reminder's version: its hours, plus this for every time the session was moved, so a session
# moved after its 24 h reminder went out gets one for its new time (version 124, 224, ...).
REMINDER_VERSION_PER_MOVE = 100


def remind(session: Session, *, now: datetime, start: datetime, limit: int) -> tuple[int, list[Booking]]:
    """Write the due reminders of Confirmed sessions starting in [start, now + 24 h), at most
    `limit` sessions: the 1 h reminder in the last hour, the 24 h one before that. A session
    paid after a reminder's moment gets no such reminder (the confirmation was enough). Once
    per (booking, hours, start time): a session moved to a new time is reminded of that time
    again. Returns (reminders written, sessions seen)."""
    batch = lists.starting_between(session, start=max(start, now), end=now + timedelta(hours=24), limit=limit)
    added = 0
    for booking in batch:
        hours = 1 if booking.starts_at - now <= timedelta(hours=1) else 24
        moment = booking.starts_at - timedelta(hours=hours)
        if booking.paid_at is None or booking.paid_at > moment:
            continue
        added += notices.booking_notice(
            session,
            booking_id=booking.id,
            recipients={"reminder.parent": booking.parent_id, "reminder.teacher": booking.teacher_id},
            version=hours + REMINDER_VERSION_PER_MOVE * booking.reschedule_count,
            now=now,
        )
    return added, batch


def unpaid_holds(session: Session, *, parent_id: uuid.UUID, now: datetime) -> list[dict[str, Any]]:
    """The parent's Pending bookings whose checkout is open: each holds a slot until paid or
    cancelled (the pages' banner: resume payment or cancel)."""
    out = []
    for booking in lists.open_checkouts(session, parent_id=parent_id, now=now):
        teacher_name, student_name = lists.names_for(session, booking)
        out.append(
            {
                "id": booking.id,
                "subject": booking.subject,
                "teacher_name": teacher_name,
                "student_name": student_name,
                "starts_at": booking.starts_at,
                "ends_at": booking.ends_at,
                "checkout_url": booking.checkout_url,
                "checkout_expires_at": booking.checkout_expires_at,
            }
        )
    return out


def free_slots(
    session: Session,
    *,
    teacher_id: uuid.UUID,
    start: datetime,
    end: datetime,
    now: datetime,
    exclude: uuid.UUID | None = None,
) -> list[slots.Interval]:
    """A teacher's free intervals: the weekly windows minus time off and Pending/Confirmed bookings
    (but booking `exclude`, the one being moved: its own time is free to it)."""
    teachers.check_range(start, end)
    return _free(session, teacher_id=teacher_id, start=start, end=end, now=now, exclude=exclude)


def _free(
    session: Session,
    *,
    teacher_id: uuid.UUID,
    start: datetime,
    end: datetime,
    now: datetime,
    exclude: uuid.UUID | None = None,
) -> list[slots.Interval]:
    profile = teachers.get_profile(session, teacher_id)
    busy = repo.busy_intervals(session, teacher_id=teacher_id, start=start, end=end, exclude=exclude)
    busy += teachers.time_off_intervals(session, teacher_id, start=start, end=end)
    busy += calendars.busy_intervals(session, teacher_id, start=start, end=end)
    return slots.free_intervals(
        teachers.windows(session, teacher_id), zone=profile.time_zone, start=start, end=end, busy=busy, now=now
    )


def bookable_starts(
    session: Session, *, teacher_id: uuid.UUID, start: datetime, end: datetime, minutes: int, now: datetime
) -> list[datetime]:
    """Start times in [start, end) where a session of `minutes` fits whole: inside the hours,
    outside time off, clear of every holding booking, and ahead of `now` (booking refuses the rest)."""
    teachers.check_range(start, end)
    duration = timedelta(minutes=minutes)
    # Look past `end` by one session, so a start near the end is judged on the time after it.
    free = _free(session, teacher_id=teacher_id, start=start, end=end + duration, now=now)
    return [t for t in slots.start_times(free, duration=duration) if t < end and t > now]


# What time off lists: paid sessions ahead, and (Pending) series lessons held for their card charge.
AFFECTED = (Status.CONFIRMED, Status.PENDING)


def affected_sessions(
    session: Session, *, teacher_id: uuid.UUID, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Confirmed sessions of the teacher inside [start, end) (and a series' lessons reserved until
    their card is charged): kept, listed for the teacher to act on."""
    rows = lists.schedule_with_parents(session, teacher_id=teacher_id, start=start, end=end)
    return [_affected(b, student, parent, email) for b, student, parent, email in rows if b.status in AFFECTED]


def _affected(b: Booking, student: str, parent: str, email: str) -> dict[str, Any]:
    return {
        "id": b.id,
        "subject": b.subject,
        "starts_at": b.starts_at,
        "ends_at": b.ends_at,
        "student_name": student,
        "parent_name": parent,
        "parent_email": email,
    }


def time_off_with_sessions(session: Session, *, teacher_id: uuid.UUID, now: datetime) -> list[dict[str, Any]]:
    """The teacher's time off that is not over yet, each with the paid sessions inside it: two
    queries however many ranges there are (the ranges, then every session inside any of them)."""
    ranges = teachers.time_off(session, teacher_id, start=now)
    inside: dict[uuid.UUID, list[dict[str, Any]]] = {row.id: [] for row in ranges}
    for time_off_id, b, student, parent, email in lists.paid_sessions_in_time_off(
        session, teacher_id=teacher_id, time_off_ids=list(inside)
    ):
        if b.status in AFFECTED:
            inside[time_off_id].append(_affected(b, student, parent, email))
    return [_time_off_view(row, inside[row.id]) for row in ranges]


def add_time_off(
    session: Session, *, teacher_id: uuid.UUID, starts_at: datetime, ends_at: datetime, note: str, now: datetime
) -> dict[str, Any]:
    """New time off; the paid sessions inside it are listed (never dropped)."""
    row = teachers.add_time_off(
        session, teacher_id=teacher_id, starts_at=starts_at, ends_at=ends_at, note=note, now=now
    )
    return _time_off_view(
        row, affected_sessions(session, teacher_id=row.teacher_id, start=row.starts_at, end=row.ends_at)
    )


def _time_off_view(row: TimeOff, affected: list[dict[str, Any]]) -> dict[str, Any]:
    view = {"id": row.id, "starts_at": row.starts_at, "ends_at": row.ends_at, "note": row.note}
    return {**view, "affected_sessions": affected}


def delete_student(session: Session, *, parent_id: uuid.UUID, student_id: uuid.UUID) -> None:
    """Remove a child; refused while bookings reference them (history is kept)."""
    student = accounts.own_student(session, parent_id=parent_id, student_id=student_id)
    if lists.student_has_bookings(session, student_id=student.id):
        raise Conflict("This child has bookings; they are kept for the record")
    session.delete(student)
