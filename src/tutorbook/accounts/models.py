"""Users (parents, teachers, admins) and a parent's children."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tutorbook.db import Base, UTCDateTime, new_id
from tutorbook.identity import Role

__all__ = ["Role", "Student", "User"]


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set by an admin: the user cannot log in and their tokens stop working (0006).
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Student(Base):
    __tablename__ = "students"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    parent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    full_name: Mapped[str] = mapped_column(sa.String(200))
    grade_level: Mapped[str | None] = mapped_column(sa.String(50))
    notes: Mapped[str | None] = mapped_column(sa.String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
