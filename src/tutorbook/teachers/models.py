"""Teacher profiles, their weekly availability windows (local times in the teacher's zone) and their
time off (UTC instants)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tutorbook.db import Base, UTCDateTime, new_id


class TeacherProfile(Base):
    __tablename__ = "teacher_profiles"
    __table_args__ = (sa.CheckConstraint("hourly_rate >= 0", name="rate_not_negative"),)

    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    subjects: Mapped[list] = mapped_column(sa.JSON, default=list)
    hourly_rate: Mapped[int] = mapped_column(sa.Integer, default=0)  # minor units
    currency: Mapped[str] = mapped_column(sa.String(3), default="usd")
    time_zone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    bio: Mapped[str] = mapped_column(sa.String(2000), default="")


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
