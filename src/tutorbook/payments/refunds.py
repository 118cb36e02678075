"""Refunds: requested inside the booking's transaction, sent to Stripe after the commit.

A refund row is an outbox entry: "pending" until Stripe accepts it, so a crash or a Stripe
outage between the two leaves a row the reconcile job sends again (same idempotency key).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.bookings import repository as bookings
from tutorbook.clock import utc_now
from tutorbook.payments import gateway as gw
from tutorbook.payments.models import Refund

log = logging.getLogger("tutorbook.refunds")
PENDING = "pending"  # ours: not yet accepted by Stripe (the outbox state)
# Stripe's own "pending" (accepted, still being processed) must not read as ours, or the refund
# would be sent again and counted twice; it is stored as "processing".
_FROM_STRIPE = {"pending": "processing"}
NOT_REFUNDED = (PENDING, "failed", "canceled")


def request(session: Session, *, booking, amount: int, reason: str, now: datetime) -> Refund:
    """Record a refund to send; nothing leaves the building yet."""
    refund = Refund(
        id=uuid.uuid4(),
        session_id=booking.id,
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


def execute(svc, *, refund_id: uuid.UUID) -> str:
    """Send one pending refund to Stripe and record the answer; returns the refund's status."""
    with svc.db.session_scope() as session:
        refund = session.get(Refund, refund_id)
        if refund is None or refund.status != PENDING:
            return refund.status if refund else "missing"
        booking = bookings.get(session, refund.session_id)
        payment_intent, amount, booking_id = booking.stripe_payment_intent_id, refund.amount, booking.id
    if not payment_intent:
        log.error("refund without a payment intent", extra={"refund_id": str(refund_id)})
        return PENDING
    try:
        result = svc.gateway.refund_sync(
            payment_intent=payment_intent, amount=amount, refund_key=f"refund-{refund_id}", booking_id=str(booking_id)
        )
    except gw.RefundRefused as exc:
        log.error("stripe refused a refund", extra={"refund_id": str(refund_id), "error": str(exc)[:200]})
        return _record(svc, refund_id=refund_id, stripe_id=None, status="failed", counted=0)
    except gw.GatewayError:
        log.warning("refund not sent; will retry", extra={"refund_id": str(refund_id)})
        return PENDING
    status = _FROM_STRIPE.get(result.status, result.status)
    return _record(svc, refund_id=refund_id, stripe_id=result.id, status=status, counted=result.amount)


def _record(svc, *, refund_id, stripe_id, status: str, counted: int) -> str:
    """Store Stripe's answer. refunded_amount becomes at least the sum Stripe accepted of this
    booking's refunds: a total, not an increment, so it agrees with the `charge.refunded` webhook
    (which sets Stripe's total for the charge) whichever of the two is written first."""
    now = utc_now()
    with svc.db.session_scope() as session:
        changed = session.execute(
            sa.update(Refund)
            .where(Refund.id == refund_id, Refund.status == PENDING)
            .values(stripe_refund_id=stripe_id, status=status, updated_at=now)
        ).rowcount
        if changed and counted:
            refund = session.get(Refund, refund_id)
            booking = bookings.get(session, refund.session_id)
            accepted = session.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(Refund.amount), 0)).where(
                    Refund.session_id == booking.id, Refund.status.not_in(NOT_REFUNDED)
                )
            )
            if accepted > booking.refunded_amount:
                bookings.set_fields(session, booking, refunded_amount=accepted, updated_at=now)
    log.info("refund recorded", extra={"refund_id": str(refund_id), "status": status, "amount": counted})
    return status
