"""The mail outbox and the development mailbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tutorbook.db import Base, UTCDateTime, new_id

STATUSES = ("pending", "sending", "sent", "failed", "skipped")


class Notification(Base):
    """One email to send: written with the change it reports, sent by the `mail` job.

    At most one per (booking, kind, version): `kind` names the message and its recipient
    (`confirmed.parent`), `version` the booking's change (its history length, also the
    invite's SEQUENCE) or the reminder (24, 1)."""

    __tablename__ = "notifications"
    __table_args__ = (
        sa.UniqueConstraint("booking_id", "kind", "version", name="uq_notifications_once"),
        sa.CheckConstraint("status IN ('pending','sending','sent','failed','skipped')", name="status"),
        sa.Index("ix_notifications_status_due", "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    booking_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("private_sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(40))
    version: Mapped[int] = mapped_column(sa.Integer)
    to_address: Mapped[str] = mapped_column(sa.String(254))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(10))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claim: Mapped[str | None] = mapped_column(sa.String(36))
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The W3C traceparent of the change that wrote it (tracing on): the mail's spans join that trace.
    trace_parent: Mapped[str | None] = mapped_column(sa.String(55))


class DevMail(Base):
    """A message kept instead of sent (no TUTORBOOK_SMTP_URL): /dev/mail, `tutorbook mail list`."""

    __tablename__ = "dev_mail"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    notification_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("notifications.id", ondelete="SET NULL"), unique=True
    )
    to_address: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(300))
    raw: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
