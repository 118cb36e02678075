"""The wallet's API shapes (camelCase JSON)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from tutorbook.config import Duration
from tutorbook.credits.models import MAX_VALID_DAYS, MIN_VALID_DAYS, CreditEntry, CreditPurchase
from tutorbook.schemas import CamelModel, InputModel, UtcDatetime


class PackageIn(InputModel):
    lessons: int = Field(ge=1, le=100, description="lessons in the package")
    duration_minutes: Duration = Field(description="each lesson's length, minutes")
    price: int = Field(gt=0, le=10**8, description="the whole package, minor units of your currency")
    valid_days: int = Field(ge=MIN_VALID_DAYS, le=MAX_VALID_DAYS, description="days its credits stay valid once bought")


class PackageOut(CamelModel):
    id: uuid.UUID
    teacher_id: uuid.UUID
    lessons: int
    duration_minutes: int
    price: int
    currency: str
    valid_days: int
    per_lesson_price: int = Field(description="price / lessons, rounded down (what an unused lesson refunds)")
    single_lesson_price: int = Field(description="one lesson of this length at the teacher's hourly rate now")
    saving: int = Field(description="against as many single lessons; 0 when none")
    saving_percent: int


def package_out(offer: Any) -> PackageOut:
    """From a `packages.Offer`."""
    p = offer.package
    return PackageOut(
        id=p.id,
        teacher_id=p.teacher_id,
        lessons=p.lessons,
        duration_minutes=p.duration_minutes,
        price=p.price,
        currency=p.currency,
        valid_days=p.valid_days,
        per_lesson_price=offer.per_lesson,
        single_lesson_price=offer.single_price,
        saving=offer.saving,
        saving_percent=offer.saving_percent,
    )


class PurchaseOut(CamelModel):
    purchase_id: uuid.UUID
    package_id: uuid.UUID
    teacher_id: uuid.UUID
    lessons: int
    duration_minutes: int
    price: int
    currency: str
    state: str = Field(description="open, paid, expired or withdrawn")
    checkout_url: str | None
    stripe_session_id: str | None
    paid_at: UtcDatetime | None
    refunded_amount: int


def purchase_out(p: CreditPurchase) -> PurchaseOut:
    return PurchaseOut(
        purchase_id=p.id,
        package_id=p.package_id,
        teacher_id=p.teacher_id,
        lessons=p.lessons,
        duration_minutes=p.duration_minutes,
        price=p.price,
        currency=p.currency,
        state=p.state,
        checkout_url=p.checkout_url if p.state == "open" else None,
        stripe_session_id=p.stripe_checkout_id,
        paid_at=p.paid_at,
        refunded_amount=p.refunded_amount,
    )


class BalanceOut(CamelModel):
    teacher_id: uuid.UUID
    teacher_name: str | None = None
    duration_minutes: int
    lessons: int
    earliest_expiry: UtcDatetime
    currency: str


def balance_out(b: Any, teacher_name: str | None = None) -> BalanceOut:
    """From a `ledger.Balance`."""
    return BalanceOut(
        teacher_id=b.teacher_id,
        teacher_name=teacher_name,
        duration_minutes=b.duration_minutes,
        lessons=b.lessons,
        earliest_expiry=b.earliest_expiry,
        currency=b.currency,
    )


class CreditsOut(CamelModel):
    balances: list[BalanceOut]
    total: int = Field(description="every usable credit, all teachers and lengths")


class EntryOut(CamelModel):
    id: int
    kind: str = Field(description="purchase, draw, return, expire, refund or adjust")
    lessons: int = Field(description="+ in, - out")
    amount: int = Field(description="money, minor units: + paid, - refunded; 0 for the others")
    currency: str
    teacher_id: uuid.UUID
    duration_minutes: int
    lot_id: uuid.UUID
    purchase_id: uuid.UUID | None
    booking_id: uuid.UUID | None
    actor: str
    reason: str | None
    refund_status: str | None
    created_at: UtcDatetime


def entry_out(e: CreditEntry) -> EntryOut:
    return EntryOut(
        id=e.id,
        kind=e.kind,
        lessons=e.lessons,
        amount=e.amount,
        currency=e.currency,
        teacher_id=e.teacher_id,
        duration_minutes=e.duration_minutes,
        lot_id=e.lot_id,
        purchase_id=e.purchase_id,
        booking_id=e.booking_id,
        actor=e.actor,
        reason=e.reason,
        refund_status=e.refund_status,
        created_at=e.created_at,
    )


class LedgerPage(CamelModel):
    items: list[EntryOut]
    page_size: int
    next_cursor: str | None = Field(description="pass as `after` for the next (older) page; null on the last")


class AdjustIn(InputModel):
    teacher_id: uuid.UUID
    duration_minutes: Duration
    lessons: int = Field(ge=-100, le=100, description="+ grant, - remove; not 0")
    reason: str = Field(min_length=1, max_length=500, description="kept in the ledger")
    valid_days: int = Field(default=365, ge=1, le=MAX_VALID_DAYS, description="a grant's validity")


class WalletOut(CamelModel):
    parent_id: uuid.UUID
    credits: CreditsOut
    ledger: list[EntryOut]
    purchases: list[PurchaseOut]
