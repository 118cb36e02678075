"""Refunds: requested inside the booking's transaction, sent to Stripe after the commit
(`tutorbook.flows.followups.send_refund`).

A refund row is an outbox entry: "pending" until Stripe accepts it, so a crash or a Stripe
outage between the two leaves a row the reconcile job sends again (same idempotency key).

Most refunds return part or all of the booking's own payment (its `payments` row, issue #27).
A refused payment (another amount, currency or checkout than the booking's: see
bookings.lifecycle.REFUSED_PAYMENT_REASONS) is another payment: its refund row has an id derived
from that payment's intent, so it is asked for once however many times the payment is seen; that
payment is recorded `refused`. Every refund row names the payment it returns money from
(`payment_id`, and Stripe's `payment_intent_id`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.bookings import records
from tutorbook.bookings import repository as bookings
from tutorbook.bookings.lifecycle import REFUSED_PAYMENT_REASONS
from tutorbook.bookings.models import Booking, Payment, Refund
from tutorbook.notifications import service as notices

log = logging.getLogger("tutorbook.refunds")
PENDING = "pending"  # ours: not yet accepted by Stripe (the outbox state)
# Stripe's own "pending" (accepted, still being processed) must not read as ours, or the refund
# would be sent again and counted twice; it is stored as "processing".
FROM_STRIPE = {"pending": "processing"}
NOT_REFUNDED = (PENDING, "failed", "canceled")
_REFUSED = tuple(sorted(r.value for r in REFUSED_PAYMENT_REASONS))
_PAYMENT_REFUNDS = uuid.UUID("5a0e4b51-6c1f-4d0c-9a57-3c7f0f8f2f11")  # uuid5 namespace: refund id per payment


def request(
    session: Session, *, booking: Booking, amount: int, reason: str, now: datetime, refund_id: uuid.UUID | None = None
) -> Refund:
    """Record a refund of the booking's own payment to send (under `refund_id`, or a new id);
    nothing leaves the building yet."""
    payment = booking.payment
    assert payment is not None, "a refund returns money a payment brought"
    refund = Refund(
        id=refund_id or uuid.uuid4(),
        session_id=booking.id,
        payment_id=payment.id,
        payment_intent_id=payment.stripe_payment_intent_id,
        amount=amount,
        currency=booking.currency,
        status=PENDING,
        reason=reason,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    session.flush()
    return refund


def promised(session: Session, *, booking: Booking) -> int:
    """What this booking's own payment has given back or is about to: the larger of the refunds
    Stripe accepted (refunded_amount) and those asked for and not failed."""
    asked = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Refund.amount), 0)).where(
            Refund.session_id == booking.id,
            Refund.status.not_in(("failed", "canceled")),
            Refund.reason.not_in(_REFUSED),
        )
    )
    payment = booking.payment
    assert payment is not None, "only a paid booking has anything to give back (cancelling.refundable)"
    return max(int(asked or 0), payment.refunded_amount)


def request_payment_refund(
    session: Session, *, booking: Booking, payment_intent: str, amount: int, currency: str, reason: str, now: datetime
) -> Refund | None:
    """Record a payment that did not pay for `booking` (refused) and its full refund; None when
    that payment's refund was asked for already. The caller holds the teacher's lock."""
    refund_id = payment_refund_id(payment_intent)
    if session.get(Refund, refund_id) is not None:
        return None
    refused = records.refuse_payment(
        session,
        booking_id=booking.id,
        amount=amount,
        currency=currency.lower(),
        checkout_id=None,
        payment_intent_id=payment_intent,
        now=now,
    )
    refund = Refund(
        id=refund_id,
        session_id=booking.id,
        payment_id=refused.id,
        payment_intent_id=payment_intent,
        amount=amount,
        currency=currency.lower(),
        status=PENDING,
        reason=reason,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    session.flush()
    return refund


def payment_refund_id(payment_intent: str) -> uuid.UUID:
    """The one refund id a refused payment can have."""
    return uuid.uuid5(_PAYMENT_REFUNDS, payment_intent)


def has_payment_refund(session: Session, *, payment_intent: str) -> bool:
    """Whether the refund of this refused payment was asked for."""
    return session.get(Refund, payment_refund_id(payment_intent)) is not None


def has_late_payment_refund(session: Session, *, booking_id: uuid.UUID) -> bool:
    stmt = sa.select(sa.exists().where(Refund.session_id == booking_id, Refund.reason == "late_payment"))
    return bool(session.scalar(stmt))


def pending_ids(session: Session, *, older_than: datetime, limit: int = 100) -> list[uuid.UUID]:
    stmt = (
        sa.select(Refund.id)
        .where(Refund.status == PENDING, Refund.created_at <= older_than)
        .order_by(Refund.created_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def for_booking(session: Session, *, booking_id: uuid.UUID) -> list[Refund]:
    return list(session.scalars(sa.select(Refund).where(Refund.session_id == booking_id).order_by(Refund.created_at)))


@dataclass(frozen=True)
class RefundToSend:
    """What sending one refund to Stripe needs, read in one transaction."""

    refund_id: uuid.UUID
    booking_id: uuid.UUID
    payment_intent: str | None
    amount: int
    connect: bool = False  # a refund of the booking's destination charge: reverse transfer and fee
    # A payment that is not the booking's own (a refused one): whether it is a destination charge
    # is Stripe's to say (a checkout Tutorbook made for the booking earlier would be one).
    other_payment: bool = False
    with_fee: bool = True  # the destination charge has an application fee to refund


def to_send(session: Session, *, refund_id: uuid.UUID) -> RefundToSend | str:
    """The refund to send, or its status when it is not ours to send any more."""
    refund = session.get(Refund, refund_id)
    if refund is None or refund.status != PENDING:
        return refund.status if refund else "missing"
    payment = session.get(Payment, refund.payment_id)
    assert payment is not None  # the foreign key
    intent = refund.payment_intent_id or payment.stripe_payment_intent_id
    own = payment.state != "refused"
    connect = bool(payment.payout_destination) and own
    with_fee = bool(payment.platform_fee_amount)
    return RefundToSend(
        refund.id, refund.session_id, intent, refund.amount, connect, other_payment=not own, with_fee=with_fee
    )


def record_answer(
    session: Session, *, refund_id: uuid.UUID, stripe_id: str | None, status: str, counted: int, now: datetime
) -> None:
    """Store Stripe's answer. refunded_amount becomes at least the sum Stripe accepted of this
    booking's refunds: a total, not an increment, so it agrees with the `charge.refunded` webhook
    (which sets Stripe's total for the charge) whichever of the two is written first. Refunds of
    refused payments are not counted: that money never paid for the booking."""
    values: dict[str, object] = {"status": status, "updated_at": now, "stripe_refund_id": stripe_id}
    # An UPDATE without RETURNING gives a CursorResult (Session.execute is typed as a Result).
    changed = cast(
        sa.CursorResult[Any],
        session.execute(sa.update(Refund).where(Refund.id == refund_id, Refund.status == PENDING).values(**values)),
    ).rowcount
    if not (changed and counted) or status in NOT_REFUNDED:  # a refund Stripe failed at once gives nothing back
        return
    refund = session.get(Refund, refund_id)
    assert refund is not None
    if refund.reason in _REFUSED:
        return
    booking: Booking | None = bookings.get(session, refund.session_id)
    assert booking is not None
    # "Refund issued", once per refund: its place among the booking's refunds is the version.
    ordinal = session.scalar(
        sa.select(sa.func.count()).where(
            Refund.session_id == booking.id,  # the version only has to grow with the booking's refunds
            sa.or_(
                Refund.created_at < refund.created_at,
                sa.and_(Refund.created_at == refund.created_at, Refund.id <= refund.id),
            ),
        )
    )
    notices.booking_notice(
        session,
        booking_id=booking.id,
        recipients={"refund_issued.parent": booking.parent_id},
        version=ordinal or 1,
        payload={"refund": counted},
        now=now,
    )
    accepted = session.scalar(  # a sum over this refund at least
        sa.select(sa.func.sum(Refund.amount)).where(
            Refund.session_id == booking.id,
            Refund.status.not_in(NOT_REFUNDED),
            Refund.reason.not_in(_REFUSED),
        )
    )
    assert accepted is not None  # this refund's own row, at least
    assert booking.payment is not None  # a refund not of a refused payment returns the booking's own
    records.raise_refunded(session, booking.payment, total=accepted, now=now, booking=booking)


def replace_refused(
    session: Session, *, refund_id: uuid.UUID, refunded_at_stripe: int, now: datetime
) -> uuid.UUID | None:
    """A refund Stripe refused, of a charge of which `refunded_at_stripe` is refunded already: a
    new pending refund of what is left (at most what was asked), and the booking's refunded_amount
    raised to Stripe's total; None when nothing is left or it was replaced already."""
    refused = session.get(Refund, refund_id)
    if refused is None or refused.status != "failed":
        return None
    booking = bookings.get(session, refused.session_id)
    payment = session.get(Payment, refused.payment_id)
    assert booking is not None  # the foreign keys
    assert payment is not None
    records.raise_refunded(session, payment, total=refunded_at_stripe, now=now, booking=booking)
    amount = min(refused.amount, payment.amount - refunded_at_stripe)
    if amount <= 0:
        return None
    replacement = Refund(
        id=uuid.uuid5(_PAYMENT_REFUNDS, f"rest-of-{refund_id}"),  # one replacement per refused refund
        session_id=refused.session_id,
        payment_id=refused.payment_id,
        payment_intent_id=refused.payment_intent_id,
        amount=amount,
        currency=refused.currency,
        status=PENDING,
        reason=refused.reason,
        created_at=now,
        updated_at=now,
    )
    if session.get(Refund, replacement.id) is not None:
        return None
    session.add(replacement)
    session.flush()
    return replacement.id


def at_least_refunded(session: Session, *, refund_id: uuid.UUID, total: int, now: datetime) -> None:
    """After `refund_id` was accepted on a charge of which `total` was refunded before it: the
    booking's refunded_amount is at least the two together (Stripe's total, as charge.refunded
    would set it)."""
    refund = session.get(Refund, refund_id)
    if refund is None:
        return
    booking = bookings.get(session, refund.session_id)
    payment = session.get(Payment, refund.payment_id)
    assert booking is not None  # the foreign keys
    assert payment is not None
    records.raise_refunded(session, payment, total=total + refund.amount, now=now, booking=booking)
