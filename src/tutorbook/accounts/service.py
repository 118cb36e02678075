"""Account use cases: register, authenticate, manage children. Services never commit."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pwdlib import PasswordHash
from sqlalchemy.orm import Session
from zxcvbn import zxcvbn

from tutorbook.accounts.models import Role, Student, User
from tutorbook.config import Settings
from tutorbook.errors import Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from tutorbook.validation import is_single_line
from tutorbook.versions import teachers_changed


class EmailTaken(Conflict):
    message = "An account with this email already exists"


class AccountDisabled(Forbidden):
    message = "This account is disabled. Please contact Tutorbook."


# zxcvbn's time grows steeply with length (a random 256 characters: about a minute): it judges the
# first ZXCVBN_MAX_LENGTH characters, its own default limit. The whole password is kept.
ZXCVBN_MAX_LENGTH = 72
DEFAULT_ADVICE = "Add another word or two. Uncommon words are better."


def check_password_policy(password: str, *, settings: Settings, user_inputs: Sequence[str] = ()) -> None:
    """A password of acceptable length that zxcvbn does not find easy to guess (its score at least
    TUTORBOOK_PASSWORD_MIN_SCORE, given the user's own email and name); 422 saying why otherwise."""
    if len(password) < settings.password_min_length:
        raise Unprocessable(
            f"The password must have at least {settings.password_min_length} characters",
            data=[{"field": "password", "message": "too short"}],
        )
    if len(password) > settings.password_max_length:
        raise Unprocessable(
            f"The password must have at most {settings.password_max_length} characters",
            data=[{"field": "password", "message": "too long"}],
        )
    words = [w for text in user_inputs for w in re.split(r"[\s@.+_-]+", text.lower()) if w]
    estimate = zxcvbn(password[:ZXCVBN_MAX_LENGTH], user_inputs=[*words, "tutorbook"])
    if estimate["score"] < settings.password_min_score:
        feedback = estimate["feedback"]
        why = " ".join(filter(None, [feedback.get("warning"), *feedback.get("suggestions", [])])) or DEFAULT_ADVICE
        raise Unprocessable(
            f"This password is too easy to guess. {why}",
            data=[{"field": "password", "message": f"too easy to guess: {why}"}],
        )


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
    """A new user; 409 if the email (any case) is taken. (A teacher also needs a profile:
    `tutorbook.teachers.service.create_user` makes both.)"""
    check_password_policy(password, settings=settings, user_inputs=[email, full_name])
    email = email.strip().lower()
    if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise EmailTaken()
    user = User(
        email=email,
        password_hash=hasher.hash(password),
        full_name=full_name.strip(),
        role=Role(role).value,
        time_zone=time_zone,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, *, hasher: PasswordHash, email: str, password: str) -> User:
    """The user with this email and password; 401 otherwise (same message either way)."""
    user = session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None:
        hasher.hash(password)  # spend the same time as a real check
        raise Unauthorized("Wrong email or password")
    valid, new_hash = hasher.verify_and_update(password, user.password_hash)
    if not valid:
        raise Unauthorized("Wrong email or password")
    if user.disabled_at is not None:
        raise AccountDisabled()
    if new_hash:
        user.password_hash = new_hash
    return user


def get_user(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


def remember_locale(session: Session, *, user_id: uuid.UUID, locale: str, overwrite: bool = False) -> None:
    """Keep the language of the user's emails (a Babel locale, "en_US"): the browser's when none
    is kept yet, or the one they chose (`overwrite`)."""
    user = session.get(User, user_id)
    if user is not None and (overwrite or user.locale is None):
        user.locale = locale
        session.flush()


def set_disabled(session: Session, *, by: uuid.UUID, user_id: uuid.UUID, disabled: bool, now: datetime) -> User:
    """Disable (cannot log in, tokens refused) or re-enable an account; not one's own."""
    user = get_user(session, user_id)
    if user.id == by:
        raise Conflict("You cannot disable or re-enable your own account")
    if disabled and user.disabled_at is None:
        user.disabled_at = now
    elif not disabled:
        user.disabled_at = None
    session.flush()
    if user.role == Role.TEACHER:
        teachers_changed(session)  # a disabled teacher is off the list
    return user


def find_users(session: Session, *, query: str | None, role: Role | None, limit: int = 50) -> list[User]:
    """Users whose email or name contains `query` (any case), by email; at most `limit`. 422 for
    a query that is not one line of text (neither database could compare it)."""
    if query and not is_single_line(query, max_length=255):
        raise Unprocessable("Search by one line of text", data=[{"field": "q", "message": "no control characters"}])
    stmt = sa.select(User).order_by(User.email).limit(limit)
    if role is not None:
        stmt = stmt.where(User.role == Role(role).value)
    if query:
        pattern = "%" + query.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            sa.or_(User.email.like(pattern, escape="\\"), sa.func.lower(User.full_name).like(pattern, escape="\\"))
        )
    return list(session.scalars(stmt))


def list_students(session: Session, *, parent_id: uuid.UUID) -> list[Student]:
    """A parent's children, oldest record first."""
    stmt = sa.select(Student).where(Student.parent_id == parent_id).order_by(Student.created_at)
    return list(session.scalars(stmt))


def own_student(session: Session, *, parent_id: uuid.UUID, student_id: uuid.UUID) -> Student:
    """A child of this parent: 404 if unknown, 403 if someone else's."""
    student = session.get(Student, student_id)
    if student is None:
        raise NotFound("Student not found")
    if student.parent_id != parent_id:
        raise Forbidden("This student is not one of your children")
    return student


def add_student(session: Session, *, parent_id: uuid.UUID, fields: dict[str, Any], now: datetime) -> Student:
    student = Student(parent_id=parent_id, created_at=now, **fields)
    session.add(student)
    session.flush()
    return student


def update_student(session: Session, *, parent_id: uuid.UUID, student_id: uuid.UUID, fields: dict[str, Any]) -> Student:
    student = own_student(session, parent_id=parent_id, student_id=student_id)
    for key, value in fields.items():
        setattr(student, key, value)
    return student
