"""A teacher's connected calendars and the busy periods last read from them (UTC instants)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tutorbook.db import Base, UTCDateTime, new_id

KINDS = ("ics", "google")


class TeacherCalendar(Base):
    """One calendar a teacher connected: its secret address (never shown or logged in full: the
    masked form is kept beside it), the conditional GET's validators, the last sync's outcome."""

    __tablename__ = "teacher_calendars"
    __table_args__ = (sa.CheckConstraint("kind IN ('ics', 'google')", name="kind"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    teacher_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("teacher_profiles.user_id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(10), default="ics")
    # ics: the secret address; google: the Google calendar's id (free/busy through the Google adapter).
    url: Mapped[str] = mapped_column(sa.String(2000))
    masked_url: Mapped[str] = mapped_column(sa.String(300))
    etag: Mapped[str | None] = mapped_column(sa.String(300))
    last_modified: Mapped[str | None] = mapped_column(sa.String(100))
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last fetch that gave (or confirmed, with 304) the busy periods stored.
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BusyPeriod(Base):
    """One busy occurrence from a calendar (its time only: an event's title is private)."""

    __tablename__ = "calendar_busy_periods"
    __table_args__ = (
        sa.CheckConstraint("ends_at > starts_at", name="time_order"),
        sa.Index("ix_calendar_busy_periods_teacher_starts", "teacher_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    calendar_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("teacher_calendars.id", ondelete="CASCADE"), index=True
    )
    # The teacher's, copied so availability reads one index.
    teacher_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("teacher_profiles.user_id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    all_day: Mapped[bool] = mapped_column(sa.Boolean, default=False)
