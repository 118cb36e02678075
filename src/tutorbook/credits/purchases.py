"""A parent's purchase of a package: open with its own Checkout Session (charged to the platform:
"separate charges and transfers", a `transfer_group` per purchase), settled exactly once when paid
(the webhook, the success page or the expire job: a compare-and-set on its state, the credits
added in the same transaction), given up when its checkout expires or is left; its unused credit
refunded pro rata. Sync, one transaction each; Stripe is called by `flows/packages.py` between them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.accounts.models import User
from tutorbook.credits import ledger, packages
from tutorbook.credits.errors import PurchaseNotFound
from tutorbook.credits.models import CreditEntry, CreditPurchase, EntryKind, PurchaseState
from tutorbook.errors import Conflict, Forbidden

PURCHASE_TYPE = "package-purchase"
UNPAID = (PurchaseState.OPEN.value, PurchaseState.EXPIRED.value, PurchaseState.WITHDRAWN.value)
_TABLE = cast(sa.Table, CreditPurchase.__table__)


@dataclass(frozen=True)
class Opened:
    purchase: CreditPurchase
    teacher_name: str


def open_purchase(
    session: Session, *, parent_id: uuid.UUID, package_id: uuid.UUID, checkout_expires_at: datetime, now: datetime
) -> Opened:
    """An open purchase of a package on sale, its terms copied as they are now."""
    package = packages.on_sale(session, package_id)
    teacher = session.get(User, package.teacher_id)
    purchase_id = uuid.uuid4()
    purchase = CreditPurchase(
        id=purchase_id,
        parent_id=parent_id,
        package_id=package.id,
        teacher_id=package.teacher_id,
        lessons=package.lessons,
        duration_minutes=package.duration_minutes,
        price=package.price,
        currency=package.currency,
        valid_days=package.valid_days,
        state=PurchaseState.OPEN.value,
        checkout_expires_at=checkout_expires_at,
        transfer_group=f"purchase_{purchase_id.hex}",
        refunded_amount=0,
        created_at=now,
        updated_at=now,
    )
    session.add(purchase)
    session.flush([purchase])
    return Opened(purchase, teacher.full_name if teacher else "")


def attach_checkout(
    session: Session, *, purchase_id: uuid.UUID, checkout_id: str, url: str | None, expires_at: datetime | None
) -> CreditPurchase:
    values: dict[str, Any] = {"stripe_checkout_id": checkout_id, "checkout_url": url}
    if expires_at is not None:
        values["checkout_expires_at"] = expires_at
    session.execute(sa.update(_TABLE).where(_TABLE.c.id == purchase_id).values(**values))
    return must_get(session, purchase_id)


def must_get(session: Session, purchase_id: uuid.UUID) -> CreditPurchase:
    purchase = session.get(CreditPurchase, purchase_id, populate_existing=True)
    if purchase is None:
        raise PurchaseNotFound()
    return purchase


def own(session: Session, *, parent_id: uuid.UUID, purchase_id: uuid.UUID) -> CreditPurchase:
    """The parent's own purchase: 404 unknown, 403 someone else's."""
    purchase = must_get(session, purchase_id)
    if purchase.parent_id != parent_id:
        raise Forbidden("This purchase is not yours")
    return purchase


def by_checkout(session: Session, checkout_id: str) -> CreditPurchase | None:
    return session.scalar(sa.select(CreditPurchase).where(CreditPurchase.stripe_checkout_id == checkout_id))


def by_reference(session: Session, *, checkout_id: str, reference: str | None) -> CreditPurchase | None:
    """The purchase whose checkout this is (by its recorded id, else the id the metadata names,
    whose recorded checkout must then be none or this one)."""
    found = by_checkout(session, checkout_id)
    if found is not None or not reference:
        return found
    try:
        named = session.get(CreditPurchase, uuid.UUID(reference))
    except ValueError:
        return None
    if named is None or named.stripe_checkout_id not in (None, checkout_id):
        return None
    return named


def settle_paid(
    session: Session,
    *,
    purchase: CreditPurchase,
    checkout_id: str,
    payment_intent: str | None,
    amount_total: int | None,
    currency: str | None,
    actor: str,
    now: datetime,
) -> str:
    """The one idempotent settlement of a paid checkout: the purchase becomes paid and its
    credits come into the wallet (a lot and its `purchase` entry), in one transaction, once.
    "paid", "already_paid", or why the payment cannot pay for it ("amount_mismatch", ...)."""
    if purchase.stripe_checkout_id not in (None, checkout_id):
        return "other_checkout"
    if (currency or "").lower() != purchase.currency.lower() or amount_total != purchase.price:
        return "amount_mismatch"
    moved = session.execute(
        sa.update(_TABLE)
        .where(_TABLE.c.id == purchase.id, _TABLE.c.state.in_(UNPAID))
        .values(
            state=PurchaseState.PAID.value,
            paid_at=now,
            stripe_checkout_id=checkout_id,
            stripe_payment_intent_id=payment_intent,
            updated_at=now,
        )
    )
    if cast(sa.CursorResult[Any], moved).rowcount != 1:
        return "already_paid"
    ledger.add_lot(
        session,
        parent_id=purchase.parent_id,
        teacher_id=purchase.teacher_id,
        duration_minutes=purchase.duration_minutes,
        lessons=purchase.lessons,
        unit_amount=packages.per_lesson(price=purchase.price, lessons=purchase.lessons),
        currency=purchase.currency,
        expires_at=now + timedelta(days=purchase.valid_days),
        kind=EntryKind.PURCHASE,
        actor=actor,
        now=now,
        amount=purchase.price,
        purchase_id=purchase.id,
    )
    session.refresh(purchase)
    return "paid"


def settle(
    session: Session,
    *,
    checkout_id: str,
    metadata: dict[str, Any],
    paid: bool,
    payment_intent: str | None,
    amount_total: int | None,
    currency: str | None,
    actor: str,
    now: datetime,
) -> str:
    """A package's checkout as Stripe reports it (webhook, success page, jobs): paid -> the
    credits in the wallet, once. "paid", "already_paid", "awaiting_payment", "unknown_purchase",
    or why the payment cannot pay for the purchase."""
    purchase = by_reference(session, checkout_id=checkout_id, reference=(metadata or {}).get("purchase_id"))
    if purchase is None:
        return "unknown_purchase"
    if not paid:
        return "awaiting_payment"
    return settle_paid(
        session,
        purchase=purchase,
        checkout_id=checkout_id,
        payment_intent=payment_intent,
        amount_total=amount_total,
        currency=currency,
        actor=actor,
        now=now,
    )


def give_up(session: Session, *, purchase_id: uuid.UUID, expired: bool, now: datetime) -> bool:
    """open -> expired (the checkout expired) or withdrawn (left, or Stripe failed); nothing was
    paid, nothing is in the wallet. False when it was no longer open."""
    state = PurchaseState.EXPIRED if expired else PurchaseState.WITHDRAWN
    moved = session.execute(
        sa.update(_TABLE)
        .where(_TABLE.c.id == purchase_id, _TABLE.c.state == PurchaseState.OPEN.value)
        .values(state=state.value, updated_at=now)
    )
    return cast(sa.CursorResult[Any], moved).rowcount == 1


def stale(session: Session, *, now: datetime, limit: int = 500) -> list[tuple[uuid.UUID, str | None]]:
    """Open purchases whose checkout expired by our clock: (id, checkout id)."""
    rows = session.execute(
        sa.select(CreditPurchase.id, CreditPurchase.stripe_checkout_id)
        .where(CreditPurchase.state == PurchaseState.OPEN.value, CreditPurchase.checkout_expires_at < now)
        .limit(limit)
    )
    return [(pid, cid) for pid, cid in rows]


def set_charge(session: Session, *, purchase_id: uuid.UUID, charge_id: str) -> None:
    session.execute(
        sa.update(_TABLE)
        .where(_TABLE.c.id == purchase_id, _TABLE.c.stripe_charge_id.is_(None))
        .values(stripe_charge_id=charge_id)
    )


def refund_amount(purchase: CreditPurchase, *, lessons_left: int) -> int:
    """What giving back `lessons_left` unused lessons refunds: lessons left × the per-lesson
    price; the whole price when none was used."""
    if lessons_left >= purchase.lessons:
        return purchase.price
    return lessons_left * packages.per_lesson(price=purchase.price, lessons=purchase.lessons)


def refund_unused(
    session: Session, *, purchase_id: uuid.UUID, user_id: uuid.UUID | None, actor: str, now: datetime
) -> CreditEntry:
    """Take the purchase's unused, unexpired lessons out of the wallet (a `refund` entry, its
    money and its Stripe refund "pending": the flow sends it after the commit). `user_id`: the
    parent asking (None: an operator). 409 when nothing is left to refund."""
    purchase = must_get(session, purchase_id)
    if user_id is not None and purchase.parent_id != user_id:
        raise Forbidden("This purchase is not yours")
    if purchase.state != PurchaseState.PAID.value or purchase.stripe_payment_intent_id is None:
        raise Conflict("Only a paid purchase can be refunded")
    lot = ledger.lot_of_purchase(session, purchase.id)
    lot = ledger.lock_lot(session, lot.id) if lot is not None else None
    if lot is None or lot.expires_at <= now:
        raise Conflict("These credits have expired; nothing is left to refund")
    left = ledger.lot_balances(session, [lot.id])[lot.id]
    if left <= 0:
        raise Conflict("No unused lesson is left in this purchase")
    amount = refund_amount(purchase, lessons_left=left)
    entry = ledger.append(
        session,
        lot,
        kind=EntryKind.REFUND,
        lessons=-left,
        amount=-amount,
        actor=actor,
        now=now,
        reason=f"{left} unused lesson(s) refunded",
        refund_status="pending",
    )
    session.execute(
        sa.update(_TABLE)
        .where(_TABLE.c.id == purchase.id)
        .values(refunded_amount=_TABLE.c.refunded_amount + amount, updated_at=now)
    )
    return entry


def pending_refunds(session: Session, *, purchase_id: uuid.UUID | None = None) -> list[CreditEntry]:
    query = sa.select(CreditEntry).where(
        CreditEntry.kind == EntryKind.REFUND.value, CreditEntry.refund_status == "pending"
    )
    if purchase_id is not None:
        query = query.where(CreditEntry.purchase_id == purchase_id)
    return list(session.scalars(query.order_by(CreditEntry.id)))


def refund_sent(session: Session, *, entry_id: int, refund_id: str | None, status: str) -> None:
    """Stripe's answer to a refund entry's refund (the one column of an entry that changes)."""
    table = cast(sa.Table, CreditEntry.__table__)
    session.execute(
        sa.update(table)
        .where(table.c.id == entry_id, table.c.refund_status == "pending")
        .values(stripe_refund_id=refund_id, refund_status=status)
    )


def of_parent(session: Session, *, parent_id: uuid.UUID, limit: int = 50) -> list[CreditPurchase]:
    return list(
        session.scalars(
            sa.select(CreditPurchase)
            .where(CreditPurchase.parent_id == parent_id)
            .order_by(CreditPurchase.created_at.desc())
            .limit(limit)
        )
    )
