"""The booking (Booking), its append-only status history, and its refunds (an outbox
until Stripe answers)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tutorbook.bookings.lifecycle import CANCELLATION_REASONS, Status
from tutorbook.db import Base, UTCDateTime, new_id

_REASONS = ",".join(f"'{r.value}'" for r in sorted(CANCELLATION_REASONS))


class StatusType(sa.TypeDecorator[Status]):
    """A booking status: a SMALLINT 0-3 in the database (the CHECK constraint), a `Status` in
    Python. Binds a Status or a plain int alike."""

    impl = sa.SmallInteger
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: sa.Dialect) -> int | None:
        return None if value is None else int(value)

    def process_result_value(self, value: int | None, dialect: sa.Dialect) -> Status | None:
        return None if value is None else Status(value)


class Booking(Base):
    __tablename__ = "private_sessions"
    __table_args__ = (
        sa.CheckConstraint("status IN (0,1,2,3)", name="status"),
        sa.CheckConstraint(
            f"cancellation_reason IS NULL OR cancellation_reason IN ({_REASONS})",
            name="cancellation_reason",
        ),
        sa.CheckConstraint("ends_at > starts_at", name="time_order"),
        sa.CheckConstraint("price_amount >= 0", name="price"),
        # My Bookings: the page in order and, on PostgreSQL, the count from the index alone (0002).
        sa.Index(
            "ix_private_sessions_my_bookings",
            "parent_id",
            sa.text("starts_at DESC"),
            "id",
            postgresql_include=["status", "paid_at"],
        ),
        sa.Index("ix_private_sessions_teacher_starts", "teacher_id", "starts_at"),
        sa.Index("ix_private_sessions_status_id", "status", "id"),  # the expire job's batches (0003)
        sa.Index("ix_private_sessions_status_ends", "status", "ends_at"),
        # The operator console's keyset pages, newest start first, filtered or not (0010).
        sa.Index("ix_private_sessions_starts_id", sa.text("starts_at DESC"), "id"),
        sa.Index("ix_private_sessions_status_starts_id", "status", sa.text("starts_at DESC"), "id"),
        sa.Index("ix_private_sessions_student_starts_id", "student_id", sa.text("starts_at DESC"), "id"),
        sa.Index("ix_private_sessions_payment_intent", "stripe_payment_intent_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    parent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id"))
    student_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("students.id"))
    teacher_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id"))
    subject: Mapped[str] = mapped_column(sa.String(100))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    price_amount: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[Status] = mapped_column(StatusType, server_default="0", default=Status.PENDING)
    stripe_session_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255))
    checkout_url: Mapped[str | None] = mapped_column(sa.String(2048))
    checkout_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancellation_reason: Mapped[str | None] = mapped_column(sa.String(32))
    refunded_amount: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    # Stripe Connect (a destination charge): the teacher's account and the platform's fee, fixed
    # when the checkout is made; once paid, the charge's transfer and application fee, and the
    # totals Stripe reports for them (what went to the teacher, reversed by refunds; the fee,
    # refunded by refunds). All null/0 for a payment that stayed on the platform.
    payout_destination: Mapped[str | None] = mapped_column(sa.String(255))
    platform_fee_amount: Mapped[int | None] = mapped_column(sa.Integer)
    stripe_charge_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    stripe_transfer_id: Mapped[str | None] = mapped_column(sa.String(255))
    stripe_application_fee_id: Mapped[str | None] = mapped_column(sa.String(255))
    transfer_amount: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    transfer_reversed_amount: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    fee_refunded_amount: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    meeting_url: Mapped[str | None] = mapped_column(sa.String(2048))
    meeting_provider: Mapped[str | None] = mapped_column(sa.String(32))
    meeting_external_id: Mapped[str | None] = mapped_column(sa.String(255))
    meeting_attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    meeting_next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    meeting_error: Mapped[str | None] = mapped_column(sa.String(500))
    # The teacher's terms in force when it was paid (NULL before: the platform's), and how many
    # times the parent has changed its time (the number the terms limit).
    terms_full_refund_hours: Mapped[int | None] = mapped_column(sa.Integer)
    terms_late_refund_percent: Mapped[int | None] = mapped_column(sa.Integer)
    terms_reschedule_deadline_hours: Mapped[int | None] = mapped_column(sa.Integer)
    terms_max_reschedules: Mapped[int | None] = mapped_column(sa.Integer)
    reschedule_count: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StatusHistory(Base):
    __tablename__ = "session_status_history"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    session_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("private_sessions.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[int | None] = mapped_column(sa.SmallInteger)
    to_status: Mapped[int] = mapped_column(sa.SmallInteger)
    reason: Mapped[str] = mapped_column(sa.String(40))
    actor: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Why, in the words of the person who did it (an admin's cancellation reason) (0010).
    note: Mapped[str | None] = mapped_column(sa.String(500))
    # A reschedule (a move from Confirmed to Confirmed): the start before and after.
    moved_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    moved_to: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AdminAction(Base):
    """What an operator did to a booking besides moving its status (and, with the refund chosen,
    their cancellations): shown with the status history on the console's booking page."""

    __tablename__ = "admin_actions"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    session_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("private_sessions.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(sa.String(40))
    actor: Mapped[str] = mapped_column(sa.String(100))
    note: Mapped[str | None] = mapped_column(sa.String(500))
    detail: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    session_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("private_sessions.id", ondelete="CASCADE"), index=True)
    stripe_refund_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    # The payment this refund returns money from: the booking's own, or (for a refused payment)
    # another payment that named the booking. NULL in rows older than migration 0006: the booking's.
    payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255))
    amount: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(3))
    # "pending" until Stripe accepts it; then Stripe's status (succeeded, failed, ...).
    status: Mapped[str] = mapped_column(sa.String(20))
    reason: Mapped[str] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
