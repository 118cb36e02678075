"""A teacher's calendars: connect, list, remove; the busy periods each sync stores; the one hook
availability and booking read them through (`busy_intervals`, `is_busy`)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tutorbook.calendars import fetch
from tutorbook.calendars import repository as repo
from tutorbook.calendars.ics import Busy
from tutorbook.calendars.models import BusyPeriod, TeacherCalendar
from tutorbook.calendars.schemas import CalendarOut
from tutorbook.errors import Conflict, NotFound, Unprocessable
from tutorbook.notifications import service as notices
from tutorbook.teachers import service as teachers

log = logging.getLogger("tutorbook.calendars")

MAX_PER_TEACHER = 10
Interval = tuple[datetime, datetime]


class CalendarNotFound(NotFound):
    message = "Calendar not found"


def add(session: Session, *, teacher_id: uuid.UUID, url: str, limits: fetch.Limits, now: datetime) -> TeacherCalendar:
    """Connect a calendar by its secret iCal address (fetched by the `calendar-sync` job)."""
    teachers.get_profile(session, teacher_id)
    url = fetch.normalise(url)
    try:
        fetch.check_url(url, limits=limits)
    except fetch.FetchError as exc:
        raise Unprocessable(exc.message, data=[{"field": "icsUrl", "message": exc.message}]) from exc
    existing = repo.of_teacher(session, teacher_id)
    if any(c.url == url for c in existing):
        raise Conflict("This calendar is connected already")
    if len(existing) >= MAX_PER_TEACHER:
        raise Conflict(f"At most {MAX_PER_TEACHER} calendars can be connected")
    calendar = TeacherCalendar(teacher_id=teacher_id, kind="ics", url=url, masked_url=fetch.mask(url), created_at=now)
    session.add(calendar)
    session.flush()
    return calendar


def add_google(session: Session, *, teacher_id: uuid.UUID, calendar_id: str, now: datetime) -> TeacherCalendar:
    """Connect one of the teacher's Google calendars by its id (free/busy, by the sync job)."""
    teachers.get_profile(session, teacher_id)
    existing = repo.of_teacher(session, teacher_id)
    if any(c.kind == "google" and c.url == calendar_id for c in existing):
        raise Conflict("This calendar is connected already")
    if len(existing) >= MAX_PER_TEACHER:
        raise Conflict(f"At most {MAX_PER_TEACHER} calendars can be connected")
    calendar = TeacherCalendar(
        teacher_id=teacher_id,
        kind="google",
        url=calendar_id,
        masked_url=f"Google Calendar {calendar_id}",
        created_at=now,
    )
    session.add(calendar)
    session.flush()
    return calendar


def teacher_email(session: Session, *, teacher_id: uuid.UUID) -> str:
    """The teacher's account address (whose Google calendars free/busy reads)."""
    return repo.teacher_email(session, teacher_id)


def remove(session: Session, *, teacher_id: uuid.UUID, calendar_id: uuid.UUID) -> None:
    """Disconnect a calendar; its busy periods go with it."""
    calendar = own(session, teacher_id=teacher_id, calendar_id=calendar_id)
    session.delete(calendar)
    session.flush()
    teachers.availability_changed(session, teacher_id=teacher_id)


def own(session: Session, *, teacher_id: uuid.UUID, calendar_id: uuid.UUID) -> TeacherCalendar:
    calendar = session.get(TeacherCalendar, calendar_id)
    if calendar is None or calendar.teacher_id != teacher_id:
        raise CalendarNotFound()
    return calendar


def listing(session: Session, *, teacher_id: uuid.UUID, now: datetime, stale_after: timedelta) -> list[CalendarOut]:
    """The teacher's calendars, each with its masked address, last sync, busy periods ahead, error."""
    counts = repo.busy_ahead(session, teacher_id, now=now)
    return [
        CalendarOut(
            id=c.id,
            kind=c.kind,
            masked_url=c.masked_url,
            created_at=c.created_at,
            last_attempt_at=c.last_attempt_at,
            last_synced_at=c.last_synced_at,
            last_error=c.last_error,
            busy_ahead=counts.get(c.id, 0),
            stale=is_stale(c, now=now, stale_after=stale_after),
        )
        for c in repo.of_teacher(session, teacher_id)
    ]


def is_stale(calendar: TeacherCalendar, *, now: datetime, stale_after: timedelta) -> bool:
    """Tried, and no good fetch for longer than the limit (a new calendar is not stale yet)."""
    if calendar.last_attempt_at is None:
        return False
    last_good = calendar.last_synced_at or calendar.created_at
    return calendar.last_error is not None and now - last_good > stale_after


# -- sync (the calendar-sync job, through flows/calendars.py) ------------------------------------


def due(session: Session, *, limit: int) -> list[tuple[TeacherCalendar, str]]:
    """Calendars to fetch now (the longest unfetched first), each with its teacher's zone."""
    found = repo.due(session, limit=limit)
    for calendar, _ in found:
        session.expunge(calendar)  # read after this transaction, while fetching
    return found


def for_sync(session: Session, *, calendar_id: uuid.UUID) -> tuple[TeacherCalendar, str] | None:
    """One calendar to fetch now, with its teacher's zone (None if removed meanwhile)."""
    found = repo.one_for_sync(session, calendar_id)
    if found is not None:
        session.expunge(found[0])
    return found


def one(
    session: Session, *, teacher_id: uuid.UUID, calendar_id: uuid.UUID, now: datetime, stale_after: timedelta
) -> CalendarOut:
    """One of the teacher's calendars as the listing shows it."""
    found = [
        c for c in listing(session, teacher_id=teacher_id, now=now, stale_after=stale_after) if c.id == calendar_id
    ]
    if not found:
        raise CalendarNotFound()
    return found[0]


def record_sync(
    session: Session,
    *,
    calendar_id: uuid.UUID,
    periods: Sequence[Busy] | None,
    etag: str | None,
    last_modified: str | None,
    now: datetime,
) -> TeacherCalendar | None:
    """A good fetch: the busy periods are now `periods` (None: unchanged since the last, a 304).
    None if the calendar was removed meanwhile."""
    calendar = session.get(TeacherCalendar, calendar_id)
    if calendar is None:
        return None
    if periods is not None:
        repo.replace_periods(session, calendar, periods)
        calendar.etag, calendar.last_modified = etag, last_modified
    calendar.last_attempt_at = calendar.last_synced_at = now
    calendar.last_error = None
    session.flush()
    if periods is not None:
        teachers.availability_changed(session, teacher_id=calendar.teacher_id)
    return calendar


def record_failure(
    session: Session, *, calendar_id: uuid.UUID, error: str, now: datetime, stale_after: timedelta
) -> bool:
    """A failed fetch: the error is kept for the teacher and the last good periods stay, until
    they are stale; then they are dropped (a dead calendar must not block times for ever) and the
    page says so. True if they were dropped now."""
    calendar = session.get(TeacherCalendar, calendar_id)
    if calendar is None:
        return False
    calendar.last_attempt_at = now
    calendar.last_error = error[:500]
    session.flush()
    if not is_stale(calendar, now=now, stale_after=stale_after):
        return False
    dropped = repo.drop_periods(session, calendar.id) > 0
    # Fetch it all again next time: the validators belong to the periods just dropped.
    calendar.etag = calendar.last_modified = None
    if dropped:
        log.warning("calendar stale", extra={"calendar_id": str(calendar.id), "calendar": calendar.masked_url})
        teachers.availability_changed(session, teacher_id=calendar.teacher_id)
        notices.calendar_stale_notice(
            session, user_id=calendar.teacher_id, calendar=calendar.masked_url, error=error, now=now
        )
    return dropped


# -- the hook availability and booking read ----------------------------------------------


def busy_intervals(session: Session, teacher_id: uuid.UUID, *, start: datetime, end: datetime) -> list[Interval]:
    """The teacher's busy periods from their calendars touching [start, end) (UTC, unmerged)."""
    return repo.intervals(session, teacher_id, start=start, end=end)


def is_busy(session: Session, teacher_id: uuid.UUID, *, start: datetime, end: datetime) -> bool:
    """Whether any of the teacher's calendars is busy somewhere in [start, end)."""
    return repo.any_touching(session, teacher_id, start=start, end=end)


def busy_detail(
    session: Session, teacher_id: uuid.UUID, *, start: datetime, end: datetime
) -> list[tuple[BusyPeriod, str]]:
    """The busy periods touching [start, end), each with its calendar's masked address."""
    names = {c.id: c.masked_url for c in repo.of_teacher(session, teacher_id)}
    return [
        (p, names.get(p.calendar_id, "?")) for p in repo.periods_touching(session, teacher_id, start=start, end=end)
    ]
