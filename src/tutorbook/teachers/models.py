"""Teacher profiles, their weekly availability windows (local times in the teacher's zone) and their
time off (UTC instants)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tutorbook.db import Base, UTCDateTime, new_id


class TeacherProfile(Base):
    __tablename__ = "teacher_profiles"
    __table_args__ = (
        sa.CheckConstraint("hourly_rate >= 0", name="rate_not_negative"),
        sa.CheckConstraint(
            "(full_refund_hours IS NULL OR full_refund_hours >= 0)"
            " AND (late_refund_percent IS NULL OR late_refund_percent BETWEEN 0 AND 100)"
            " AND (reschedule_deadline_hours IS NULL OR reschedule_deadline_hours >= 0)"
            " AND (max_reschedules IS NULL OR max_reschedules >= 0)",
            name="terms",
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    subjects: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    hourly_rate: Mapped[int] = mapped_column(sa.Integer, default=0)  # minor units
    currency: Mapped[str] = mapped_column(sa.String(3), default="usd")
    time_zone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    bio: Mapped[str] = mapped_column(sa.String(2000), default="")
    # An admin can take a teacher off the list (and off booking) without deleting anything (0010).
    listed: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    # The teacher's own terms (teachers/policy.py); NULL until they set them: the platform's.
    full_refund_hours: Mapped[int | None] = mapped_column(sa.Integer)
    late_refund_percent: Mapped[int | None] = mapped_column(sa.Integer)
    reschedule_deadline_hours: Mapped[int | None] = mapped_column(sa.Integer)
    max_reschedules: Mapped[int | None] = mapped_column(sa.Integer)


class AvailabilityWindow(Base):
    __tablename__ = "availability_windows"
    __table_args__ = (
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        sa.CheckConstraint("start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute", name="span"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    teacher_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("teacher_profiles.user_id", ondelete="CASCADE"), index=True
    )
    weekday: Mapped[int] = mapped_column(sa.SmallInteger)  # 0 = Monday
    start_minute: Mapped[int] = mapped_column(sa.Integer)
    end_minute: Mapped[int] = mapped_column(sa.Integer)


class PayoutAccount(Base):
    """A teacher's Stripe connected account (Express) and its state as Stripe last reported it.

    `state_at` is when that state held at Stripe (an `account.updated` event's `created`, or the
    time the account was read): an event older than it is out of date and ignored."""

    __tablename__ = "teacher_payout_accounts"

    teacher_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    stripe_account_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    charges_enabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    payouts_enabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    details_submitted: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    currently_due: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(100))
    state_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
class TimeOff(Base):
    """A range with no bookings (a holiday, a sick day): taken out of the teacher's free time."""

    __tablename__ = "time_off"
    __table_args__ = (
        sa.CheckConstraint("ends_at > starts_at", name="time_order"),
        sa.Index("ix_time_off_teacher_starts", "teacher_id", "starts_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    teacher_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("teacher_profiles.user_id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
