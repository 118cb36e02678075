"""Teachers paid per delivered lesson of a package (issue #28 item 6), the database side.

A package is charged to the platform ("separate charges and transfers"); when a lesson booked with
one of its credits is Completed, the teacher is sent that lesson's share: the lesson's price (what
one credit of the purchase was paid) less the platform fee, as a transfer funded by the purchase's
charge (`source_transaction`) in the purchase's `transfer_group`. Exactly once: the transfer's
idempotency key is the booking's (`lesson-payout-<booking id>`), and the transfer is recorded on the
booking's `credit` payment (`stripe_transfer_id`, `transfer_amount`) by a guarded UPDATE; a
lesson with a recorded transfer is never due again.

Before the call, the fee and the teacher's account are fixed on the payment (`platform_fee_amount`,
`payout_destination`, each set once), so a retry asks Stripe for the very same transfer whatever
the settings became meanwhile. What never reaches a teacher: an unused, expired or refunded credit
(no Completed lesson draws it), a lesson cancelled late (its credit used up, the lesson not
delivered), and a credit an operator granted (no charge paid for it). A lesson whose teacher cannot
receive payouts yet, or whose purchase's charge id is not recorded yet, waits: it is due again at
the next run (reconcile reports it as `payout_missing`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.bookings import policy, records
from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.models import Booking, Payment
from tutorbook.bookings.payment_states import PaymentKind
from tutorbook.credits.models import CreditEntry, CreditPurchase, EntryKind
from tutorbook.teachers import payouts

KEY_PREFIX = "lesson-payout-"


@dataclass(frozen=True)
class PayoutDue:
    """A delivered credit-paid lesson whose teacher is to be paid: the transfer to ask for."""

    booking_id: uuid.UUID
    purchase_id: uuid.UUID
    amount: int  # the teacher's share: the lesson's price less the platform fee
    fee: int
    currency: str
    destination: str
    source_transaction: str
    transfer_group: str

    @property
    def idempotency_key(self) -> str:
        return f"{KEY_PREFIX}{self.booking_id}"


# A lesson's own payment (not a refused one: a checkout naming it that could not pay for it) and
# its draw of a purchase's credit: the joins of both queries below, said once.
_OWN = sa.and_(Payment.booking_id == Booking.id, Payment.state != "refused")
_DRAWN = sa.and_(CreditEntry.booking_id == Booking.id, CreditEntry.kind == EntryKind.DRAW.value)


def _due_rows() -> sa.Select[Booking, Payment, CreditPurchase]:
    """Completed lessons paid with a purchased credit whose transfer is not recorded."""
    return (
        sa.select(Booking, Payment, CreditPurchase)
        .join(Payment, _OWN)
        .join(CreditEntry, _DRAWN)
        .join(CreditPurchase, CreditPurchase.id == CreditEntry.purchase_id)
        .where(Payment.kind == PaymentKind.CREDIT.value, Payment.stripe_transfer_id.is_(None))
        .where(Booking.status == Status.COMPLETED.value, CreditPurchase.stripe_charge_id.is_not(None))
    )


def due(session: Session, *, fee_percent: float, limit: int = 100) -> list[PayoutDue]:
    """The transfers to make now (oldest lesson first), each payment's fee and destination fixed
    first (once); lessons whose teacher has no account able to receive payouts wait."""
    out = []
    rows = session.execute(_due_rows().order_by(Booking.ends_at, Booking.id).limit(limit)).tuples()
    for booking, payment, purchase in rows:
        destination = payment.payout_destination or payouts.destination(session, teacher_id=booking.teacher_id)
        if destination is None:
            continue
        fee = payment.platform_fee_amount
        if fee is None:
            fee = policy.platform_fee(amount=payment.amount, percent=fee_percent)
        records.fix_payout(session, payment, fee=fee, destination=destination)
        share = payment.amount - (payment.platform_fee_amount or 0)
        if share <= 0 or payment.payout_destination is None or purchase.stripe_charge_id is None:
            continue  # a 100 % fee leaves nothing to send
        out.append(
            PayoutDue(
                booking_id=booking.id,
                purchase_id=purchase.id,
                amount=share,
                fee=payment.platform_fee_amount or 0,
                currency=payment.currency,
                destination=payment.payout_destination,
                source_transaction=purchase.stripe_charge_id,
                transfer_group=purchase.transfer_group,
            )
        )
    return out


def record(session: Session, *, booking_id: uuid.UUID, transfer_id: str, amount: int, now: datetime) -> bool:
    """Record a lesson's transfer on its payment, once; False when one is recorded already."""
    return records.record_payout(session, booking_id=booking_id, transfer_id=transfer_id, amount=amount, now=now)


@dataclass(frozen=True)
class PurchaseBooks:
    """A paid purchase as the ledger and the payments record it, for reconcile."""

    purchase_id: uuid.UUID
    payment_intent: str
    transfer_group: str
    money: int  # the ledger's money entries: paid, less the refunds Stripe accepted or that failed
    refunds_in_flight: int  # refund entries Stripe has not answered yet
    shares: int  # what the completed draws' lessons are due: price less fee, each
    transferred: int  # what their recorded transfers say, less reversals
    unpaid_lessons: tuple[uuid.UUID, ...]  # completed draws without a recorded transfer


def paid_purchases(session: Session, *, limit: int = 500) -> list[uuid.UUID]:
    """The paid purchases with a payment intent, newest first (reconcile checks each)."""
    stmt = (
        sa.select(CreditPurchase.id)
        .where(CreditPurchase.state == "paid", CreditPurchase.stripe_payment_intent_id.is_not(None))
        .order_by(CreditPurchase.paid_at.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def books_of(session: Session, *, purchase_id: uuid.UUID, fee_percent: float) -> PurchaseBooks | None:
    """What Tutorbook recorded of a purchase's money and its lessons' transfers."""
    purchase = session.get(CreditPurchase, purchase_id)
    if purchase is None or purchase.stripe_payment_intent_id is None:
        return None
    entries = list(session.scalars(sa.select(CreditEntry).where(CreditEntry.purchase_id == purchase_id)))
    in_flight = [e for e in entries if e.kind == EntryKind.REFUND.value and e.refund_status in (None, "pending")]
    money = sum(e.amount for e in entries if e not in in_flight)
    stmt = (
        sa.select(Booking.id, Payment)
        .join(Payment, _OWN)
        .join(CreditEntry, _DRAWN)
        .where(CreditEntry.purchase_id == purchase_id, Booking.status == Status.COMPLETED.value)
    )
    shares = transferred = 0
    unpaid = []
    for booking_id, payment in session.execute(stmt).tuples():
        fee = payment.platform_fee_amount
        fee = policy.platform_fee(amount=payment.amount, percent=fee_percent) if fee is None else fee
        shares += max(payment.amount - fee, 0)
        transferred += payment.transfer_amount - payment.transfer_reversed_amount
        if payment.stripe_transfer_id is None and payment.amount - fee > 0:
            unpaid.append(booking_id)
    return PurchaseBooks(
        purchase_id=purchase.id,
        payment_intent=purchase.stripe_payment_intent_id,
        transfer_group=purchase.transfer_group,
        money=money,
        refunds_in_flight=sum(-e.amount for e in in_flight),
        shares=shares,
        transferred=transferred,
        unpaid_lessons=tuple(unpaid),
    )


__all__ = ["KEY_PREFIX", "PayoutDue", "PurchaseBooks", "books_of", "due", "paid_purchases", "record"]
