"""Password reset: a single-use token (only its sha256 is stored) that lives a short while;
using it sets the password and ends every earlier login token (the user's token version)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from pwdlib import PasswordHash
from sqlalchemy.orm import Session

from tutorbook.accounts.models import PasswordReset, User
from tutorbook.accounts.service import check_password_policy
from tutorbook.clock import as_utc
from tutorbook.config import Settings
from tutorbook.errors import BadRequest


class ResetRefused(BadRequest):
    message = "This reset link is invalid, used or expired; ask for a new one"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(
    session: Session, *, email: str, ttl: timedelta, every: timedelta, now: datetime
) -> tuple[User, str] | None:
    """A new reset token for the account with this email; None when there is no such account,
    or when one was started less than `every` ago (one reset email per account that often, so
    asking many times mails nobody many times)."""
    # The user's row locked (PostgreSQL; SQLite has one writer): two requests at once see each other.
    user = session.scalar(sa.select(User).where(User.email == email.strip().lower()).with_for_update())
    if user is None:
        return None
    last = session.scalar(sa.select(sa.func.max(PasswordReset.created_at)).where(PasswordReset.user_id == user.id))
    if last is not None and as_utc(last) > now - every:
        return None
    token = secrets.token_urlsafe(32)
    session.add(PasswordReset(user_id=user.id, token_hash=digest(token), expires_at=now + ttl, created_at=now))
    session.flush()
    return user, token


def is_open(session: Session, *, token: str, now: datetime) -> bool:
    """Whether this reset link can still be used (not used, not expired): the page asks on opening."""
    if not token or len(token) > 200:
        return False
    found = session.scalar(
        sa.select(PasswordReset.id).where(
            PasswordReset.token_hash == digest(token), PasswordReset.used_at.is_(None), PasswordReset.expires_at > now
        )
    )
    return found is not None


def finish(
    session: Session, *, token: str, password: str, hasher: PasswordHash, settings: Settings, now: datetime
) -> User:
    """Use the token (once, before it expires): set the password, end earlier login tokens and
    every other open reset of the account."""
    check_password_policy(password, settings=settings)
    user_id = session.scalar(
        sa.update(PasswordReset)
        .where(
            PasswordReset.token_hash == digest(token), PasswordReset.used_at.is_(None), PasswordReset.expires_at > now
        )
        .values(used_at=now)
        .returning(PasswordReset.user_id)
    )
    if user_id is None:
        raise ResetRefused()
    user = session.get(User, user_id)
    assert user is not None  # the foreign key
    user.password_hash = hasher.hash(password)
    user.token_version = (user.token_version or 0) + 1
    session.execute(
        sa.update(PasswordReset)
        .where(PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
    )
    session.flush()
    return user
