"""The booking (Booking) and the records of its own (issue #27): its payments (one row per attempt
to pay it, with their own state machine, `payment_states.py`), its refunds (an outbox until Stripe
answers, each tied to a payment), its meeting link and the terms in force when it was paid; and its
append-only status history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tutorbook.bookings.lifecycle import CANCELLATION_REASONS, Status
from tutorbook.bookings.payment_states import PAYMENT_KINDS, PaymentState
from tutorbook.db import Base, UTCDateTime, new_id

_REASONS = ",".join(f"'{r.value}'" for r in sorted(CANCELLATION_REASONS))
_KINDS = ",".join(f"'{k}'" for k in PAYMENT_KINDS)
_STATES = ",".join(f"'{s.value}'" for s in PaymentState)


class StatusType(sa.TypeDecorator[Status]):
    """A booking status: a SMALLINT 0-3 in the database (the CHECK constraint), a `Status` in
    Python. Binds a Status or a plain int alike."""

    impl = sa.SmallInteger
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: sa.Dialect) -> int | None:
        return None if value is None else int(value)

    def process_result_value(self, value: int | None, dialect: sa.Dialect) -> Status | None:
        return None if value is None else Status(value)


def _read(record: str, column: str, default: Any = None) -> Any:
    """A read-only property: `column` of the booking's `record` (`default` without one)."""

    def get(self: Booking) -> Any:
        found = getattr(self, record)
        return default if found is None else getattr(found, column)

    return property(get, doc=f"{record}.{column} (read-only; written through bookings/records.py)")


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
    # When the booking was paid for (its own fact, kept beside its payment's: My Bookings, the
    # teacher's schedule and "never paid" read it from the booking's covering index).
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancellation_reason: Mapped[str | None] = mapped_column(sa.String(32))
    # How many times the parent has changed its time (the number the terms limit).
    reschedule_count: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Its records, loaded with it (one-to-one outer joins on their keys): its own payment (not a
    # refused one; `records.py` writes it), its meeting link, the terms in force when it was paid.
    payment: Mapped[Payment | None] = relationship(
        primaryjoin="and_(Booking.id == foreign(Payment.booking_id), Payment.state != literal_column(\"'refused'\"))",
        uselist=False,
        viewonly=True,
        lazy="joined",
    )
    meeting: Mapped[MeetingLink | None] = relationship(uselist=False, viewonly=True, lazy="joined")
    terms_in_force: Mapped[BookingTerms | None] = relationship(uselist=False, viewonly=True, lazy="joined")

    # What the API's JSON, the pages and the emails show of its records, under the names they
    # always had (the JSON must not change). Read-only: writes go through `records.py`; in a query
    # these are no columns (filter on Payment / MeetingLink, joined).
    @property
    def checkout_id(self) -> str | None:
        """Its own payment's Stripe Checkout (a `checkout` inside the code, issue #27)."""
        return self.payment.stripe_checkout_id if self.payment else None

    @property
    def stripe_session_id(self) -> str | None:
        """`checkout_id` under the JSON's name (`stripeSessionId`), for the output models only."""
        return self.checkout_id

    @property
    def stripe_payment_intent_id(self) -> str | None:
        return self.payment.stripe_payment_intent_id if self.payment else None

    @property
    def checkout_url(self) -> str | None:
        return self.payment.checkout_url if self.payment else None

    @property
    def checkout_expires_at(self) -> datetime | None:
        return self.payment.checkout_expires_at if self.payment else None

    @property
    def refunded_amount(self) -> int:
        return self.payment.refunded_amount if self.payment else 0

    @property
    def payout_destination(self) -> str | None:
        return self.payment.payout_destination if self.payment else None

    @property
    def platform_fee_amount(self) -> int | None:
        return self.payment.platform_fee_amount if self.payment else None

    @property
    def meeting_url(self) -> str | None:
        return self.meeting.url if self.meeting else None

    @property
    def meeting_provider(self) -> str | None:
        return self.meeting.provider if self.meeting else None

    @property
    def meeting_external_id(self) -> str | None:
        return self.meeting.external_id if self.meeting else None

    # The rest of what these records hold, read the same way (the console, the reports, tests).
    stripe_charge_id = _read("payment", "stripe_charge_id")
    stripe_transfer_id = _read("payment", "stripe_transfer_id")
    stripe_application_fee_id = _read("payment", "stripe_application_fee_id")
    transfer_amount = _read("payment", "transfer_amount", 0)
    transfer_reversed_amount = _read("payment", "transfer_reversed_amount", 0)
    fee_refunded_amount = _read("payment", "fee_refunded_amount", 0)
    meeting_attempts = _read("meeting", "attempts", 0)
    meeting_next_attempt_at = _read("meeting", "next_attempt_at")
    meeting_error = _read("meeting", "error")
    terms_full_refund_hours = _read("terms_in_force", "full_refund_hours")
    terms_late_refund_percent = _read("terms_in_force", "late_refund_percent")
    terms_reschedule_deadline_hours = _read("terms_in_force", "reschedule_deadline_hours")
    terms_max_reschedules = _read("terms_in_force", "max_reschedules")


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
    # another payment that named the booking (0015; the migration filled it in).
    payment_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    # That payment's intent, as Stripe's refund names it (NULL in rows older than migration 0006).
    payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255))
    amount: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(3))
    # "pending" until Stripe accepts it; then Stripe's status (succeeded, failed, ...).
    status: Mapped[str] = mapped_column(sa.String(20))
    reason: Mapped[str] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Payment(Base):
    """One attempt to pay a booking (pretix's OrderPayment): a Stripe Checkout today (`kind`
    leaves room for others). Its `state` changes only through `payment_states.py` and a
    compare-and-set. The Connect split (a destination charge): the teacher's account and the
    platform's fee fixed when the checkout is made; once paid, the charge, its transfer and
    application fee, and the totals Stripe reports for them. All null/0 for a payment that stayed on
    the platform. A refused payment (another price, currency or checkout than the booking's) is kept
    too, so its refund has a payment to belong to."""

    __tablename__ = "payments"
    __table_args__ = (
        sa.CheckConstraint(f"kind IN ({_KINDS})", name="kind"),
        sa.CheckConstraint(f"state IN ({_STATES})", name="state"),
        sa.CheckConstraint("amount >= 0", name="amount"),
        # The booking's own payment (every state but refused): at most one while a booking is paid
        # by one checkout; a booking's list rows join it through this index.
        sa.Index(
            "uq_payments_booking_own",
            "booking_id",
            unique=True,
            postgresql_where=sa.text("state <> 'refused'"),
            sqlite_where=sa.text("state <> 'refused'"),
        ),
        sa.Index("ix_payments_booking_id", "booking_id"),
        sa.Index("ix_payments_payment_intent", "stripe_payment_intent_id"),
        sa.Index("ix_payments_charge", "stripe_charge_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    booking_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("private_sessions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(20))
    state: Mapped[str] = mapped_column(sa.String(20), server_default=PaymentState.OPEN.value)
    amount: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(3))
    stripe_checkout_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255))
    checkout_url: Mapped[str | None] = mapped_column(sa.String(2048))
    checkout_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refunded_amount: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    payout_destination: Mapped[str | None] = mapped_column(sa.String(255))
    platform_fee_amount: Mapped[int | None] = mapped_column(sa.Integer)
    stripe_charge_id: Mapped[str | None] = mapped_column(sa.String(255))
    stripe_transfer_id: Mapped[str | None] = mapped_column(sa.String(255))
    stripe_application_fee_id: Mapped[str | None] = mapped_column(sa.String(255))
    transfer_amount: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    transfer_reversed_amount: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    fee_refunded_amount: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MeetingLink(Base):
    """A booking's video-meeting link and, until it is made, its retries (one per booking)."""

    __tablename__ = "meeting_links"

    booking_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("private_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str | None] = mapped_column(sa.String(2048))
    provider: Mapped[str | None] = mapped_column(sa.String(32))
    external_id: Mapped[str | None] = mapped_column(sa.String(255))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(sa.String(500))


class BookingTerms(Base):
    """The teacher's terms in force when the booking was paid (no row: the platform's)."""

    __tablename__ = "booking_terms"

    booking_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("private_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    full_refund_hours: Mapped[int] = mapped_column(sa.Integer)
    late_refund_percent: Mapped[int] = mapped_column(sa.Integer)
    reschedule_deadline_hours: Mapped[int] = mapped_column(sa.Integer)
    max_reschedules: Mapped[int] = mapped_column(sa.Integer)
