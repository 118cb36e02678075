"""Teacher use cases: profiles, the listing checklist, weekly availability, time off, free slots,
cancellation and reschedule terms."""

from __future__ import annotations

import uuid
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pwdlib import PasswordHash
from sqlalchemy.orm import Session

from tutorbook.accounts import service as accounts
from tutorbook.accounts.models import User
from tutorbook.config import Settings
from tutorbook.db.columns import read_columns
from tutorbook.errors import Conflict, NotFound, Unprocessable
from tutorbook.identity import Role
from tutorbook.teachers import slots
from tutorbook.teachers.models import AvailabilityWindow, TeacherProfile, TimeOff
from tutorbook.teachers.policy import FIELDS, Terms
from tutorbook.teachers.schemas import PolicyOut, TeacherOut
from tutorbook.versions import schedule_changed, teachers_changed

MAX_RANGE = timedelta(days=62)
MAX_TIME_OFF = timedelta(days=366)
# Ranges not over yet, per teacher: a year of single days off and then some. Every booking and
# availability query reads them, so they are bounded like any other list a user can grow.
MAX_UPCOMING_TIME_OFF = 200

# What a teacher needs before parents see them (the one listing rule): step -> what to do.
CHECKLIST = {
    "price": "Set your hourly rate",
    "subjects": "Add the subjects you teach",
    "hours": "Add at least one weekly window of hours",
}


def create_user(
    session: Session,
    *,
    hasher: PasswordHash,
    settings: Settings,
    email: str,
    password: str,
    full_name: str,
    role: Role,
    time_zone: str = "UTC",
    now: datetime,
) -> User:
    """Registration: `accounts.create_user`, and for a teacher an empty profile to fill in."""
    user = accounts.create_user(
        session,
        hasher=hasher,
        settings=settings,
        email=email,
        password=password,
        full_name=full_name,
        role=role,
        time_zone=time_zone,
        now=now,
    )
    if user.role == Role.TEACHER:
        create_empty_profile(session, user_id=user.id, time_zone=time_zone)
    return user


def create_empty_profile(session: Session, *, user_id: uuid.UUID, time_zone: str) -> None:
    session.add(
        TeacherProfile(user_id=user_id, subjects=[], hourly_rate=0, currency="usd", time_zone=time_zone, bio="")
    )
    teachers_changed(session)


def _out(user: User, profile: TeacherProfile) -> TeacherOut:
    return TeacherOut(
        id=user.id,
        full_name=user.full_name,
        subjects=list(profile.subjects or []),
        hourly_rate=profile.hourly_rate,
        currency=profile.currency,
        time_zone=profile.time_zone,
        bio=profile.bio,
    )


def missing(profile: Any, *, has_hours: bool) -> list[str]:
    """The checklist steps (keys of CHECKLIST) this teacher still lacks before being listed."""
    gaps = []
    if profile.hourly_rate <= 0:
        gaps.append("price")
    if not profile.subjects:
        gaps.append("subjects")
    if not has_hours:
        gaps.append("hours")
    return gaps


def checklist(session: Session, teacher_id: uuid.UUID) -> list[str]:
    """What `teacher_id` still lacks before parents see them (empty: listed)."""
    profile = get_profile(session, teacher_id)
    return missing(profile, has_hours=_has_hours(session, teacher_id))


def _has_hours(session: Session, teacher_id: uuid.UUID) -> bool:
    return bool(session.scalar(sa.select(sa.exists().where(AvailabilityWindow.teacher_id == teacher_id))))


def list_teachers(session: Session, *, subject: str | None = None) -> list[TeacherOut]:
    """Listed teachers (price, subjects and hours: `missing` is empty), by name (then id); optionally
    those teaching `subject`. Plain rows: the ORM objects cost most of this (issue #33)."""
    rows = session.execute(_LISTED).all()
    out = [_row_out(r) for r in rows if not missing(r, has_hours=bool(r.has_hours))]
    if subject:
        out = [t for t in out if any(s.lower() == subject.lower() for s in t.subjects)]
    return out


_LISTED = (
    sa.select(
        User.id,
        User.full_name,
        TeacherProfile.subjects,
        TeacherProfile.hourly_rate,
        TeacherProfile.currency,
        TeacherProfile.time_zone,
        TeacherProfile.bio,
        sa.exists().where(AvailabilityWindow.teacher_id == TeacherProfile.user_id).label("has_hours"),
    )
    .join(TeacherProfile, TeacherProfile.user_id == User.id)
    .where(TeacherProfile.listed.is_(True), User.disabled_at.is_(None))  # an admin's switches
    .order_by(User.full_name, User.id)
)


def _row_out(row: Any) -> TeacherOut:
    return TeacherOut(
        id=row.id,
        full_name=row.full_name,
        subjects=list(row.subjects or []),
        hourly_rate=row.hourly_rate,
        currency=row.currency,
        time_zone=row.time_zone,
        bio=row.bio,
    )


def get_profile(session: Session, teacher_id: uuid.UUID) -> TeacherProfile:
    """The profile; 404 for an unknown id or a non-teacher."""
    profile = session.get(TeacherProfile, teacher_id)
    if profile is None:
        raise NotFound("Teacher not found")
    return profile


def set_listed(session: Session, *, teacher_id: uuid.UUID, listed: bool) -> TeacherProfile:
    """Show a teacher on the list and let parents book them, or not (an admin's switch)."""
    profile = get_profile(session, teacher_id)
    profile.listed = listed
    session.flush()
    teachers_changed(session)
    return profile


def _teacher_user(session: Session, teacher_id: uuid.UUID) -> User:
    """The user behind a profile (the profile's key is the user's, so it is there)."""
    user = session.get(User, teacher_id)
    if user is None:
        raise NotFound("Teacher not found")
    return user


def get_teacher(session: Session, teacher_id: uuid.UUID) -> TeacherOut:
    profile = get_profile(session, teacher_id)
    return _out(_teacher_user(session, teacher_id), profile)


def update_profile(session: Session, *, teacher_id: uuid.UUID, fields: dict[str, Any]) -> TeacherOut:
    """Replace the profile fields given."""
    profile = get_profile(session, teacher_id)
    user = _teacher_user(session, teacher_id)
    full_name = fields.pop("full_name", None)
    if full_name:
        user.full_name = full_name
    for key, value in fields.items():
        setattr(profile, key, value)
    session.flush()
    teachers_changed(session)
    schedule_changed(session, teacher_ids=[teacher_id])  # the time zone places the weekly hours
    return _out(user, profile)


def windows(session: Session, teacher_id: uuid.UUID) -> list[slots.Window]:
    return [slots.Window(*row) for row in session.execute(_WINDOWS, {"teacher_id": teacher_id})]


# Built once, with the columns a Window needs (every booking and every slot list reads them).
_WINDOWS = (
    sa.select(AvailabilityWindow.weekday, AvailabilityWindow.start_minute, AvailabilityWindow.end_minute)
    .where(AvailabilityWindow.teacher_id == sa.bindparam("teacher_id", type_=AvailabilityWindow.teacher_id.type))
    .order_by(AvailabilityWindow.weekday, AvailabilityWindow.start_minute)
)


def set_windows(session: Session, *, teacher_id: uuid.UUID, new: list[slots.Window]) -> list[slots.Window]:
    """Replace the weekly windows (overlapping ones on one day are merged)."""
    get_profile(session, teacher_id)
    session.execute(sa.delete(AvailabilityWindow).where(AvailabilityWindow.teacher_id == teacher_id))
    merged = _merge_windows(new)
    for w in merged:
        session.add(
            AvailabilityWindow(
                teacher_id=teacher_id, weekday=w.weekday, start_minute=w.start_minute, end_minute=w.end_minute
            )
        )
    session.flush()
    teachers_changed(session)  # no hours: off the list
    schedule_changed(session, teacher_ids=[teacher_id])
    return merged


def _merge_windows(new: list[slots.Window]) -> list[slots.Window]:
    out: list[slots.Window] = []
    for w in sorted(new, key=lambda w: (w.weekday, w.start_minute)):
        if out and out[-1].weekday == w.weekday and w.start_minute <= out[-1].end_minute:
            last = out.pop()
            w = slots.Window(w.weekday, last.start_minute, max(last.end_minute, w.end_minute))
        out.append(w)
    return out


def check_range(start: datetime, end: datetime) -> None:
    if end <= start:
        raise Unprocessable("`to` must be after `from`", data=[{"field": "to", "message": "before from"}])
    if end - start > MAX_RANGE:
        raise Unprocessable("Ask for at most 62 days at a time", data=[{"field": "to", "message": "range too long"}])


# -- terms -----------------------------------------------------------------------------


def terms(session: Session, *, teacher_id: uuid.UUID, platform: Terms) -> tuple[Terms, bool]:
    """(the teacher's terms in force, whether they are the platform's because the teacher set none)."""
    row = read_columns(session, _TERMS, {"teacher_id": teacher_id}).one_or_none()
    if row is None:
        raise NotFound("Teacher not found")
    return terms_of(row, platform=platform)


# Built once: the terms' columns only, not the profile (every confirmation reads them).
_TERMS = sa.select(*(getattr(TeacherProfile, name) for name in FIELDS)).where(
    TeacherProfile.user_id == sa.bindparam("teacher_id", type_=TeacherProfile.user_id.type)
)


def terms_of(profile: Any, *, platform: Terms) -> tuple[Terms, bool]:
    """The terms in force for a profile (or a row of its terms' columns)."""
    if profile.full_refund_hours is None:
        return platform, True
    own = {name: getattr(profile, name) for name in FIELDS}
    return replace(platform, **{k: v for k, v in own.items() if v is not None}), False


def set_terms(session: Session, *, teacher_id: uuid.UUID, new: Terms) -> Terms:
    """Replace the teacher's terms; bookings paid already keep theirs."""
    profile = get_profile(session, teacher_id)
    for name in FIELDS:
        setattr(profile, name, getattr(new, name))
    session.flush()
    return new


def policy_out(found: tuple[Terms, bool]) -> PolicyOut:
    current, is_default = found
    return PolicyOut(**asdict(current), is_default=is_default, sentence=current.sentence())
# -- time off --------------------------------------------------------------------------


def time_off(
    session: Session, teacher_id: uuid.UUID, *, start: datetime | None = None, end: datetime | None = None
) -> list[TimeOff]:
    """The teacher's time off by start; with `start`/`end`, only ranges touching [start, end)."""
    stmt = sa.select(TimeOff).where(TimeOff.teacher_id == teacher_id, *_touching(start, end))
    return list(session.scalars(stmt.order_by(TimeOff.starts_at, TimeOff.id)))


def _touching(start: Any, end: Any) -> list[sa.ColumnElement[bool]]:
    """Time off touching [start, end): it ends after `start` and starts before `end` (either
    bound left out when None; values or bound parameters)."""
    conditions = []
    if start is not None:
        conditions.append(TimeOff.ends_at > start)
    if end is not None:
        conditions.append(TimeOff.starts_at < end)
    return conditions


def time_off_intervals(
    session: Session, teacher_id: uuid.UUID, *, start: datetime, end: datetime
) -> list[slots.Interval]:
    return [(t.starts_at, t.ends_at) for t in time_off(session, teacher_id, start=start, end=end)]


def add_time_off(
    session: Session, *, teacher_id: uuid.UUID, starts_at: datetime, ends_at: datetime, note: str, now: datetime
) -> TimeOff:
    """A new range with no bookings (ends after it starts, at most a year long, not all in the past)."""
    get_profile(session, teacher_id)
    if ends_at <= starts_at:
        raise Unprocessable("Time off must end after it starts", data=[{"field": "endsAt", "message": "before start"}])
    if ends_at - starts_at > MAX_TIME_OFF:
        raise Unprocessable("Time off is at most a year at a time", data=[{"field": "endsAt", "message": "too long"}])
    if ends_at <= now:
        raise Unprocessable("This time off is already over", data=[{"field": "endsAt", "message": "in the past"}])
    upcoming = session.scalar(
        sa.select(sa.func.count()).where(TimeOff.teacher_id == teacher_id, TimeOff.ends_at > now)
    )
    if (upcoming or 0) >= MAX_UPCOMING_TIME_OFF:
        raise Conflict(
            f"You have {MAX_UPCOMING_TIME_OFF} time-off ranges ahead, the most there can be; "
            "remove some (or make one longer range) first"
        )
    row = TimeOff(teacher_id=teacher_id, starts_at=starts_at, ends_at=ends_at, note=note, created_at=now)
    session.add(row)
    session.flush()
    schedule_changed(session, teacher_ids=[teacher_id])
    return row


def delete_time_off(session: Session, *, teacher_id: uuid.UUID, time_off_id: uuid.UUID) -> None:
    row = session.get(TimeOff, time_off_id)
    if row is None or row.teacher_id != teacher_id:
        raise NotFound("Time off not found")
    session.delete(row)
    session.flush()
    schedule_changed(session, teacher_ids=[teacher_id])


def is_time_off(session: Session, teacher_id: uuid.UUID, *, start: datetime, end: datetime) -> bool:
    """Whether [start, end) touches any of the teacher's time off."""
    return session.scalar(_TIME_OFF_TOUCHING, {"teacher_id": teacher_id, "start": start, "end": end}) is not None


# Built once: one of the teacher's time-off ranges touching [start, end), if any.
_TIME_OFF_TOUCHING = (
    sa.select(TimeOff.id)
    .where(
        TimeOff.teacher_id == sa.bindparam("teacher_id", type_=TimeOff.teacher_id.type),
        *_touching(
            sa.bindparam("start", type_=TimeOff.ends_at.type), sa.bindparam("end", type_=TimeOff.starts_at.type)
        ),
    )
    .limit(1)
)


# The same, for a caller that asks it inside a statement of its own (`.exists()`: a booking's
# checks of its slot, all in one statement; binds `teacher_id`, `start`, `end`).
TIME_OFF_TOUCHING = _TIME_OFF_TOUCHING


# -- cached availability -----------------------------------------------------------------


def availability_changed(session: Session, *, teacher_id: uuid.UUID) -> None:
    """`teacher_id`'s free time changed outside bookings (their calendars' busy periods were
    replaced or dropped): the cached weeks of availability of every process are stale from this
    transaction's commit (tutorbook.versions)."""
    schedule_changed(session, teacher_ids=[teacher_id])
