"""Every query of the calendars and their busy periods."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.accounts.models import User
from tutorbook.calendars.ics import Busy
from tutorbook.calendars.models import BusyPeriod, TeacherCalendar
from tutorbook.teachers.models import TeacherProfile


def of_teacher(session: Session, teacher_id: uuid.UUID) -> list[TeacherCalendar]:
    stmt = sa.select(TeacherCalendar).where(TeacherCalendar.teacher_id == teacher_id)
    return list(session.scalars(stmt.order_by(TeacherCalendar.created_at, TeacherCalendar.id)))


def busy_ahead(session: Session, teacher_id: uuid.UUID, *, now: datetime) -> dict[uuid.UUID, int]:
    """Per calendar of the teacher: how many of its busy periods have not ended yet."""
    rows = session.execute(
        sa.select(BusyPeriod.calendar_id, sa.func.count())
        .where(BusyPeriod.teacher_id == teacher_id, BusyPeriod.ends_at > now)
        .group_by(BusyPeriod.calendar_id)
    )
    return {calendar_id: n for calendar_id, n in rows}


def due(session: Session, *, limit: int) -> list[tuple[TeacherCalendar, str]]:
    """Calendars to fetch, the longest unfetched first, each with its teacher's time zone."""
    stmt = (
        sa.select(TeacherCalendar, TeacherProfile.time_zone)
        .join(TeacherProfile, TeacherProfile.user_id == TeacherCalendar.teacher_id)
        .order_by(TeacherCalendar.last_attempt_at.is_not(None), TeacherCalendar.last_attempt_at, TeacherCalendar.id)
        .limit(limit)
    )
    return [(calendar, zone) for calendar, zone in session.execute(stmt)]


def teacher_email(session: Session, teacher_id: uuid.UUID) -> str:
    return session.scalar(sa.select(User.email).where(User.id == teacher_id)) or ""


def one_for_sync(session: Session, calendar_id: uuid.UUID) -> tuple[TeacherCalendar, str] | None:
    row = session.execute(
        sa.select(TeacherCalendar, TeacherProfile.time_zone)
        .join(TeacherProfile, TeacherProfile.user_id == TeacherCalendar.teacher_id)
        .where(TeacherCalendar.id == calendar_id)
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def replace_periods(session: Session, calendar: TeacherCalendar, periods: Sequence[Busy]) -> None:
    """The calendar's busy periods are now exactly `periods`."""
    drop_periods(session, calendar.id)
    if periods:
        session.execute(
            sa.insert(BusyPeriod),
            [
                {
                    "calendar_id": calendar.id,
                    "teacher_id": calendar.teacher_id,
                    "starts_at": p.starts_at,
                    "ends_at": p.ends_at,
                    "all_day": p.all_day,
                }
                for p in periods
            ],
        )


def drop_periods(session: Session, calendar_id: uuid.UUID) -> int:
    result = session.execute(sa.delete(BusyPeriod).where(BusyPeriod.calendar_id == calendar_id))
    return cast(sa.CursorResult[Any], result).rowcount or 0


def periods_touching(session: Session, teacher_id: uuid.UUID, *, start: datetime, end: datetime) -> list[BusyPeriod]:
    """The teacher's busy periods touching [start, end), by start."""
    stmt = (
        sa.select(BusyPeriod)
        .where(BusyPeriod.teacher_id == teacher_id, BusyPeriod.ends_at > start, BusyPeriod.starts_at < end)
        .order_by(BusyPeriod.starts_at, BusyPeriod.id)
    )
    return list(session.scalars(stmt))


def intervals(
    session: Session, teacher_id: uuid.UUID, *, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The (start, end) of the teacher's busy periods touching [start, end)."""
    rows = session.execute(_TOUCHING, {"teacher_id": teacher_id, "start": start, "end": end})
    return [(s, e) for s, e in rows]


def any_touching(session: Session, teacher_id: uuid.UUID, *, start: datetime, end: datetime) -> bool:
    return session.scalar(_ANY_TOUCHING, {"teacher_id": teacher_id, "start": start, "end": end}) is not None


def _touching() -> list[sa.ColumnElement[bool]]:
    return [
        BusyPeriod.teacher_id == sa.bindparam("teacher_id", type_=BusyPeriod.teacher_id.type),
        BusyPeriod.ends_at > sa.bindparam("start", type_=BusyPeriod.ends_at.type),
        BusyPeriod.starts_at < sa.bindparam("end", type_=BusyPeriod.starts_at.type),
    ]


# Built once (every availability page and every booking reads them).
_TOUCHING = sa.select(BusyPeriod.starts_at, BusyPeriod.ends_at).where(*_touching())
_ANY_TOUCHING = sa.select(BusyPeriod.id).where(*_touching()).limit(1)
# For a caller that asks it inside a statement of its own (`.exists()`: a booking's checks of its
# slot, all in one statement; binds `teacher_id`, `start`, `end`).
ANY_TOUCHING = _ANY_TOUCHING
