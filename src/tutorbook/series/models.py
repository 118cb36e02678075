"""A series (one row: who, what, which weekly time, how it is paid) and its occurrences (one row
per booking it made: the week it stands for, and the off-session charge's attempts)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tutorbook.db import Base, UTCDateTime, new_id

PAY_WITH = ("card", "credit")


class Series(Base):
    __tablename__ = "series"
    __table_args__ = (
        sa.CheckConstraint("pay_with IN ('card','credit')", name="pay_with"),
        sa.CheckConstraint("weeks BETWEEN 2 AND 52", name="weeks"),
        sa.Index("ix_series_parent_id", "parent_id"),
        sa.Index("ix_series_teacher_id", "teacher_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    parent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id"))
    student_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("students.id"))
    teacher_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id"))
    subject: Mapped[str] = mapped_column(sa.String(100))
    # The first week's start; week k starts k weeks later at the same wall-clock time in `time_zone`.
    first_starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_minutes: Mapped[int] = mapped_column(sa.Integer)
    weeks: Mapped[int] = mapped_column(sa.Integer)
    time_zone: Mapped[str] = mapped_column(sa.String(64))
    pay_with: Mapped[str] = mapped_column(sa.String(10))
    # The parent's Stripe Customer (card series): the card saved by the first checkout is charged
    # off-session for the later weeks.
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Occurrence(Base):
    """A booking of a series: the week it stands for (its start before any move: the invite's
    RECURRENCE-ID) and, for a card series, its off-session charge."""

    __tablename__ = "series_occurrences"
    __table_args__ = (
        sa.UniqueConstraint("series_id", "week", name="uq_series_occurrences_series_week"),
        sa.Index("ix_series_occurrences_charge_due", "charge_due_at"),
    )

    booking_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("private_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    series_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("series.id", ondelete="CASCADE"), index=True)
    week: Mapped[int] = mapped_column(sa.Integer)
    original_starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Card series, weeks after the first: when the job charges the saved card (NULL: paid otherwise).
    charge_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    charge_attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why the off-session charge did not pay: "declined" or "requires_action" (the parent was sent
    # a link to pay this one lesson by `pay_deadline_at`).
    charge_failure: Mapped[str | None] = mapped_column(sa.String(40))
    pay_deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
