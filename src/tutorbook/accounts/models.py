"""Users (parents, teachers, admins) and a parent's children."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tutorbook.db import Base, UTCDateTime, new_id
from tutorbook.identity import Role

__all__ = ["PasswordReset", "Role", "Student", "User"]


class User(Base):
    __tablename__ = "users"
    __table_args__ = (sa.CheckConstraint("role IN ('Parent','Teacher','Admin')", name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    # Stored lower-cased, so the unique constraint is case-insensitive.
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    full_name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(16))
    time_zone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    # The language of dates and times in their emails ("en_US"): the browser's at registration
    # and login, or chosen on /settings; NULL: the default (en_GB) (0011).
    locale: Mapped[str | None] = mapped_column(sa.String(35))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set by an admin: the user cannot log in and their tokens stop working (0010).
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Raised by a password reset: login tokens carry it ("tv") and older ones stop working.
    token_version: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    # sha256 of the secret in the user's calendar feed URL; NULL when none (or revoked).
    calendar_token_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    reminders_opt_out: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    # Set when the mail server refused the address for good (reported in `tutorbook mail list`).
    mail_undeliverable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PasswordReset(Base):
    """A single-use password reset token, stored as its sha256."""

    __tablename__ = "password_resets"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Student(Base):
    __tablename__ = "students"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    parent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    full_name: Mapped[str] = mapped_column(sa.String(200))
    grade_level: Mapped[str | None] = mapped_column(sa.String(50))
    notes: Mapped[str | None] = mapped_column(sa.String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LoginFailure(Base):
    """Recent failed logins under one throttle key (an account, an address, or the pair), in the
    database so that every replica sees them. The key is an HMAC, so a password typed into the
    email field is not kept readable."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(sa.Integer)
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
