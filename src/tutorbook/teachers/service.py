"""Teacher use cases: profiles, weekly availability, free slots."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pwdlib import PasswordHash
from sqlalchemy.orm import Session

from tutorbook.accounts import service as accounts
from tutorbook.accounts.models import User
from tutorbook.config import Settings
from tutorbook.errors import NotFound, Unprocessable
from tutorbook.identity import Role
from tutorbook.teachers import slots
from tutorbook.teachers.models import AvailabilityWindow, TeacherProfile
from tutorbook.teachers.schemas import TeacherOut

MAX_RANGE = timedelta(days=62)


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


def list_teachers(session: Session, *, subject: str | None = None) -> list[TeacherOut]:
    """Bookable teachers (a price, subjects, weekly hours), by name; optionally those teaching `subject`."""
    has_hours = sa.exists().where(AvailabilityWindow.teacher_id == TeacherProfile.user_id)
    rows = session.execute(
        sa.select(User, TeacherProfile)
        .join(TeacherProfile, TeacherProfile.user_id == User.id)
        .where(TeacherProfile.hourly_rate > 0, has_hours, TeacherProfile.listed.is_(True), User.disabled_at.is_(None))
        .order_by(User.full_name)
    ).all()
    out = [_out(u, p) for u, p in rows if p.subjects]
    if subject:
        out = [t for t in out if any(s.lower() == subject.lower() for s in t.subjects)]
    return out


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
    return _out(user, profile)


def windows(session: Session, teacher_id: uuid.UUID) -> list[slots.Window]:
    rows = session.scalars(
        sa.select(AvailabilityWindow)
        .where(AvailabilityWindow.teacher_id == teacher_id)
        .order_by(AvailabilityWindow.weekday, AvailabilityWindow.start_minute)
    )
    return [slots.Window(r.weekday, r.start_minute, r.end_minute) for r in rows]


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
