"""Packages a teacher sells: n lessons of one length for a price, valid for some days."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook import currencies
from tutorbook.credits.errors import PackageNotFound
from tutorbook.credits.models import CreditPackage
from tutorbook.errors import Unprocessable
from tutorbook.teachers import service as teachers


@dataclass(frozen=True)
class Offer:
    """A package as parents see it: with its per-lesson price and the saving against single lessons."""

    package: CreditPackage
    per_lesson: int
    single_price: int  # one lesson of that length at the teacher's hourly rate now
    saving: int  # what the package saves against `lessons` single lessons (0 when none)
    saving_percent: int


def per_lesson(*, price: int, lessons: int) -> int:
    """One lesson's share of a package's price (rounded down: a refund of every unused lesson
    never exceeds what was paid)."""
    return price // lessons


def create(
    session: Session,
    *,
    teacher_id: uuid.UUID,
    lessons: int,
    duration_minutes: int,
    price: int,
    valid_days: int,
    now: datetime,
) -> Offer:
    """A new package, in the teacher's currency; 422 when Stripe could not charge its price."""
    profile = teachers.get_profile(session, teacher_id)
    currency = currencies.get(profile.currency)
    if currency is None:
        raise Unprocessable(
            "Your currency cannot be charged",
            data=[{"field": "price", "message": f"{profile.currency} is not supported"}],
        )
    if price < currency.minimum:
        raise Unprocessable(
            "This price is under the minimum charge",
            data=[{"field": "price", "message": f"at least {currency.text(currency.minimum)}"}],
        )
    package = CreditPackage(
        id=uuid.uuid4(),
        teacher_id=teacher_id,
        lessons=lessons,
        duration_minutes=duration_minutes,
        price=price,
        currency=profile.currency,
        valid_days=valid_days,
        created_at=now,
    )
    session.add(package)
    session.flush([package])
    return _offer(package, hourly_rate=profile.hourly_rate)


def _offer(package: CreditPackage, *, hourly_rate: int) -> Offer:
    single = currencies.session_price(hourly_rate=hourly_rate, minutes=package.duration_minutes)
    saving = max(single * package.lessons - package.price, 0)
    full = single * package.lessons
    return Offer(
        package,
        per_lesson(price=package.price, lessons=package.lessons),
        single,
        saving,
        (saving * 100 // full) if full else 0,
    )


def offers(session: Session, *, teacher_id: uuid.UUID) -> list[Offer]:
    """The teacher's packages on sale, shortest first, then fewest lessons."""
    profile = teachers.get_profile(session, teacher_id)
    rows = session.scalars(
        sa.select(CreditPackage)
        .where(CreditPackage.teacher_id == teacher_id, CreditPackage.retired_at.is_(None))
        .order_by(CreditPackage.duration_minutes, CreditPackage.lessons, CreditPackage.created_at)
    )
    return [_offer(p, hourly_rate=profile.hourly_rate) for p in rows]


def on_sale(session: Session, package_id: uuid.UUID) -> CreditPackage:
    """A package that is still sold; 404 otherwise."""
    package = session.get(CreditPackage, package_id)
    if package is None or package.retired_at is not None:
        raise PackageNotFound()
    return package


def retire(session: Session, *, teacher_id: uuid.UUID, package_id: uuid.UUID, now: datetime) -> None:
    """No longer sold (credits bought stay valid); 404 for another teacher's or an unknown one."""
    package = session.get(CreditPackage, package_id)
    if package is None or package.teacher_id != teacher_id:
        raise PackageNotFound()
    if package.retired_at is None:
        package.retired_at = now
        session.flush([package])
