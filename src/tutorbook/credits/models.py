"""Packages, purchases, credit lots and the ledger (migration 0017_credit_packages).

- `credit_packages`: what a teacher sells (n lessons of one length for a price, valid for days).
- `credit_purchases`: one parent's purchase of a package, paid through its own Checkout Session,
  charged to the platform ("separate charges and transfers": `transfer_group` per purchase, the
  charge id kept for the per-lesson transfers).
- `credit_lots`: credits that came in together (a paid purchase, an operator's grant) and expire
  together; the unit a draw takes from, the row a draw locks on PostgreSQL.
- `credit_entries`: the ledger, append-only. A lot's balance is the sum of its entries' `lessons`;
  a family's balance the sum over its lots. Nothing is ever updated in place but a refund entry's
  Stripe status (the refund outbox).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tutorbook.db import Base, UTCDateTime, new_id


class EntryKind(StrEnum):
    PURCHASE = "purchase"  # + the purchase's lessons, + the money paid
    DRAW = "draw"  # - 1, a lesson booked with it
    RETURN = "return"  # + 1, that lesson cancelled on terms that refund it in full
    EXPIRE = "expire"  # - what was left when the lot's validity ended
    REFUND = "refund"  # - the unused lessons, - the money given back (a partial Stripe refund)
    ADJUST = "adjust"  # +/- an operator's grant or removal, with a reason


class PurchaseState(StrEnum):
    OPEN = "open"  # checkout made (or being made), not paid
    PAID = "paid"  # paid: its lot is in the wallet
    EXPIRED = "expired"  # the checkout expired unpaid
    WITHDRAWN = "withdrawn"  # given up unpaid (Back on the checkout, Stripe failing)


_KINDS = ",".join(f"'{k.value}'" for k in EntryKind)
_STATES = ",".join(f"'{s.value}'" for s in PurchaseState)
MIN_VALID_DAYS, MAX_VALID_DAYS = 30, 730


class CreditPackage(Base):
    __tablename__ = "credit_packages"
    __table_args__ = (
        sa.CheckConstraint("lessons BETWEEN 1 AND 100", name="lessons"),
        sa.CheckConstraint("price > 0", name="price"),
        sa.CheckConstraint(f"valid_days BETWEEN {MIN_VALID_DAYS} AND {MAX_VALID_DAYS}", name="valid_days"),
        sa.Index("ix_credit_packages_teacher", "teacher_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    teacher_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    lessons: Mapped[int] = mapped_column(sa.Integer)
    duration_minutes: Mapped[int] = mapped_column(sa.Integer)
    price: Mapped[int] = mapped_column(sa.Integer)  # minor units of `currency`, all lessons
    currency: Mapped[str] = mapped_column(sa.String(3))
    valid_days: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # no longer sold


class CreditPurchase(Base):
    __tablename__ = "credit_purchases"
    __table_args__ = (
        sa.CheckConstraint(f"state IN ({_STATES})", name="state"),
        sa.CheckConstraint("refunded_amount >= 0 AND refunded_amount <= price", name="refunded"),
        sa.Index("ix_credit_purchases_parent", "parent_id", "created_at"),
        sa.Index("ix_credit_purchases_state_expiry", "state", "checkout_expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    parent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    package_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("credit_packages.id"))
    teacher_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id"))
    # The package's terms as bought (a package changed or retired later changes nothing here).
    lessons: Mapped[int] = mapped_column(sa.Integer)
    duration_minutes: Mapped[int] = mapped_column(sa.Integer)
    price: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(3))
    valid_days: Mapped[int] = mapped_column(sa.Integer)
    state: Mapped[str] = mapped_column(sa.String(20), default=PurchaseState.OPEN.value)
    stripe_checkout_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    checkout_url: Mapped[str | None] = mapped_column(sa.String(2048))
    checkout_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255))
    stripe_charge_id: Mapped[str | None] = mapped_column(sa.String(255))
    transfer_group: Mapped[str] = mapped_column(sa.String(64))
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refunded_amount: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CreditLot(Base):
    __tablename__ = "credit_lots"
    __table_args__ = (
        sa.CheckConstraint("lessons >= 0", name="lessons"),
        sa.CheckConstraint("unit_amount >= 0", name="unit_amount"),
        sa.Index("ix_credit_lots_wallet", "parent_id", "teacher_id", "duration_minutes", "expires_at"),
        sa.Index("ix_credit_lots_expires", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    parent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    teacher_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id"))
    duration_minutes: Mapped[int] = mapped_column(sa.Integer)
    lessons: Mapped[int] = mapped_column(sa.Integer)  # how many came in (never changed: see the ledger)
    unit_amount: Mapped[int] = mapped_column(sa.Integer)  # what one lesson of it was paid (0: a grant)
    currency: Mapped[str] = mapped_column(sa.String(3))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    purchase_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("credit_purchases.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The expiry warnings, each sent once (a compare-and-set on NULL).
    warned_30_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warned_7_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CreditEntry(Base):
    __tablename__ = "credit_entries"
    __table_args__ = (
        sa.CheckConstraint(f"kind IN ({_KINDS})", name="kind"),
        sa.CheckConstraint("lessons <> 0", name="lessons"),
        # One draw and at most one return per booking: a booking can never take two credits, nor
        # give one back twice, whatever races.
        sa.Index(
            "uq_credit_entries_booking_kind",
            "booking_id",
            "kind",
            unique=True,
            postgresql_where=sa.text("booking_id IS NOT NULL AND kind IN ('draw', 'return')"),
            sqlite_where=sa.text("booking_id IS NOT NULL AND kind IN ('draw', 'return')"),
        ),
        sa.Index("ix_credit_entries_parent_id", "parent_id", sa.text("id DESC")),
        sa.Index("ix_credit_entries_lot", "lot_id"),
        sa.Index("ix_credit_entries_purchase", "purchase_id"),
    )

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    parent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    teacher_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id"))
    duration_minutes: Mapped[int] = mapped_column(sa.Integer)
    lot_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("credit_lots.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(20))
    lessons: Mapped[int] = mapped_column(sa.Integer)  # + in, - out
    amount: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")  # money: paid +, refunded -
    currency: Mapped[str] = mapped_column(sa.String(3))
    purchase_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("credit_purchases.id"))
    booking_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("private_sessions.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(sa.String(100))
    reason: Mapped[str | None] = mapped_column(sa.String(500))
    # A refund entry's Stripe refund (its outbox): "pending" until Stripe accepts it.
    stripe_refund_id: Mapped[str | None] = mapped_column(sa.String(255))
    refund_status: Mapped[str | None] = mapped_column(sa.String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
