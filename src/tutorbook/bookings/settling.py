"""Settling a checkout: the one idempotent fulfilment (a payment confirms, or is refused and
refunded, or comes late), and the cancellation of a Pending booking left unpaid."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from tutorbook.bookings import lifecycle, outbox, policy, refunds
from tutorbook.bookings import repository as repo
from tutorbook.bookings.checkout import Checkout
from tutorbook.bookings.errors import AlreadyPaid
from tutorbook.bookings.lifecycle import Reason, Status
from tutorbook.bookings.lookup import by_checkout, must_get
from tutorbook.bookings.models import Booking
from tutorbook.bookings.outcomes import Followups, Outcome, OutcomeKind
from tutorbook.teachers import service as teachers
from tutorbook.teachers.policy import Terms

log = logging.getLogger("tutorbook.bookings")


def payment_problem(booking: Booking, checkout: Checkout) -> Reason | None:
    """Why this checkout cannot pay for `booking`, or None when it can: it must be the checkout
    the booking itself created (its recorded id) and charge exactly the booking's price. A booking
    with no recorded checkout (its creation failed) adopts none: anyone holding the Stripe key
    can make a checkout that names it, and the teacher's share would then stay with the platform."""
    if booking.checkout_id not in (None, checkout.id):
        return Reason.OTHER_CHECKOUT
    if (checkout.currency or "").lower() != booking.currency.lower():
        return Reason.CURRENCY_MISMATCH
    if checkout.amount_total != booking.price_amount:
        return Reason.AMOUNT_MISMATCH
    if booking.checkout_id != checkout.id:  # none recorded; a price mismatch says more, above
        return Reason.OTHER_CHECKOUT
    return None


def _own_booking(booking: Booking | None, checkout: Checkout) -> Booking | None:
    """`booking` if this checkout is the one it created (its recorded id)."""
    if booking is None or booking.checkout_id == checkout.id:
        return booking
    return None


def fulfil(
    session: Session, *, checkout: Checkout, actor: str, platform: Terms, now: datetime, records: bool = True
) -> Outcome:
    """The one idempotent fulfilment: Pending + paid -> Confirmed; a late payment is confirmed
    if the slot is still free and ahead, otherwise refunded in full; a payment at another price
    or through another checkout than the booking's is refunded in full, the booking unchanged.
    Safe to call any number of times from the webhook, the success page and the jobs. A booking
    confirmed keeps the teacher's terms in force now (`platform`: for a teacher who set none).
    `records=False`: the booking is read with its payment only (its meeting link and terms are
    read only if used), for a caller that does not show the outcome's booking (the webhook)."""
    named = by_checkout(session, checkout, named=True, records=records)
    if named is not None and checkout.paid and (problem := payment_problem(named, checkout)) is not None:
        return _refuse_payment(
            session, booking=named, checkout=checkout, reason=problem, actor=actor, platform=platform, now=now
        )
    booking = _own_booking(named, checkout)
    if booking is None:
        return Outcome(OutcomeKind.UNKNOWN_BOOKING)
    if not checkout.paid:
        return Outcome(OutcomeKind.AWAITING_PAYMENT, booking)
    status = Status(booking.status)
    if status == Status.PENDING:
        change = lifecycle.confirm_payment(
            status, now=now, payment_intent_id=checkout.payment_intent, terms=_terms_now(session, booking, platform)
        )
        if not repo.apply(session, booking, change, actor=actor):
            return fulfil(session, checkout=checkout, actor=actor, platform=platform, now=now, records=records)
        outbox.notify(session, booking, ("confirmed.parent", "confirmed.teacher"), now=now)
        return Outcome(OutcomeKind.CONFIRMED, booking, _paid_followups(booking))
    if status != Status.CANCELLED or booking.paid_at is not None:
        return Outcome(OutcomeKind.ALREADY_FULFILLED, booking)
    paid = checkout.amount_total if checkout.amount_total is not None else booking.price_amount
    return _late_payment(
        session,
        booking=booking,
        payment_intent=checkout.payment_intent,
        paid=paid,
        actor=actor,
        platform=platform,
        now=now,
    )


def confirm_charged(
    session: Session, *, booking_id: uuid.UUID, payment_intent: str, actor: str, platform: Terms, now: datetime
) -> Outcome:
    """A weekly series' lesson charged off-session with the saved card (issue #29): Pending ->
    Confirmed as a paid checkout confirms it; charged after it was cancelled, a late payment
    (confirmed if its time is still free and ahead, else refunded in full). Idempotent."""
    booking = must_get(session, booking_id=booking_id)
    status = Status(booking.status)
    if status == Status.PENDING:
        change = lifecycle.confirm_payment(
            status, now=now, payment_intent_id=payment_intent, terms=_terms_now(session, booking, platform)
        )
        if not repo.apply(session, booking, change, actor=actor):
            return confirm_charged(
                session, booking_id=booking_id, payment_intent=payment_intent, actor=actor, platform=platform, now=now
            )
        outbox.notify(session, booking, ("confirmed.parent", "confirmed.teacher"), now=now)
        return Outcome(OutcomeKind.CONFIRMED, booking, _paid_followups(booking))
    if status != Status.CANCELLED or booking.paid_at is not None:
        return Outcome(OutcomeKind.ALREADY_FULFILLED, booking)
    return _late_payment(
        session,
        booking=booking,
        payment_intent=payment_intent,
        paid=booking.price_amount,
        actor=actor,
        platform=platform,
        now=now,
    )


def _terms_now(session: Session, booking: Booking, platform: Terms) -> dict[str, int]:
    """The columns keeping the booking's teacher's terms in force now."""
    return policy.to_store(teachers.terms(session, teacher_id=booking.teacher_id, platform=platform)[0])


def _paid_followups(booking: Booking) -> Followups:
    """After a payment is accepted: the meeting link, and a destination charge's split."""
    return Followups(links=[booking.id], splits=[booking.id] if booking.payout_destination else [])


def _refuse_payment(
    session: Session,
    *,
    booking: Booking,
    checkout: Checkout,
    reason: Reason,
    actor: str,
    platform: Terms,
    now: datetime,
) -> Outcome:
    """Refund a payment that cannot pay for `booking` in full, once, and say why in its history;
    the booking keeps its status (and its own checkout, if it has one)."""
    repo.lock_teacher(session, booking.teacher_id)  # one refund however many paths see the payment
    session.refresh(booking)
    reason = payment_problem(booking, checkout) or reason
    if checkout.payment_intent and refunds.has_payment_refund(session, payment_intent=checkout.payment_intent):
        return Outcome(OutcomeKind.ALREADY_REFUNDED, booking, refused=reason)
    if not checkout.payment_intent or not checkout.amount_total:
        return Outcome(reason, booking, refused=reason)  # nothing was charged, nothing changes
    change = lifecycle.refuse_payment(Status(booking.status), reason=reason, now=now)
    if not repo.apply(session, booking, change, actor=actor):
        return fulfil(session, checkout=checkout, actor=actor, platform=platform, now=now)
    log.warning(
        "payment refused",
        extra={"booking_id": str(booking.id), "checkout_id": checkout.id, "reason": reason.value},
    )
    refund = refunds.request_payment_refund(
        session,
        booking=booking,
        payment_intent=checkout.payment_intent,
        amount=checkout.amount_total,
        currency=checkout.currency or booking.currency,
        reason=reason.value,
        now=now,
    )
    if refund is None:  # asked for already (has_payment_refund saw it first, under the same lock)
        return Outcome(OutcomeKind.ALREADY_REFUNDED, booking, refused=reason)
    return Outcome(reason, booking, Followups(refunds=[refund.id]), refused=reason)


def _late_payment(
    session: Session,
    *,
    booking: Booking,
    payment_intent: str | None,
    paid: int,
    actor: str,
    platform: Terms,
    now: datetime,
) -> Outcome:
    """A payment (`payment_intent`, `paid` minor units) of a booking already Cancelled unpaid:
    confirmed if its time is still free and ahead, else refunded in full."""
    # Lock first: Cancelled -> Cancelled cannot be a compare-and-set, so the teacher lock is
    # what stops two concurrent fulfils from both recording a refund.
    repo.lock_teacher(session, booking.teacher_id)
    session.refresh(booking)
    if booking.status != Status.CANCELLED or booking.paid_at is not None:
        return Outcome(OutcomeKind.ALREADY_FULFILLED, booking)
    if refunds.has_late_payment_refund(session, booking_id=booking.id):
        return Outcome(OutcomeKind.ALREADY_REFUNDED, booking)
    free = not repo.overlapping(
        session, teacher_id=booking.teacher_id, start=booking.starts_at, end=booking.ends_at, exclude=booking.id
    )
    status = Status(booking.status)
    if free and booking.starts_at > now:
        change = lifecycle.confirm_late_payment(
            status,
            now=now,
            payment_intent_id=payment_intent,
            was_paid=False,
            terms=_terms_now(session, booking, platform),
        )
        repo.apply(session, booking, change, actor=actor)
        outbox.notify(session, booking, ("confirmed.parent", "confirmed.teacher"), now=now)
        return Outcome(Reason.LATE_PAYMENT_CONFIRMED, booking, _paid_followups(booking))
    change = lifecycle.refund_late_payment(status, now=now, payment_intent_id=payment_intent)
    repo.apply(session, booking, change, actor=actor)
    refund = refunds.request(session, booking=booking, amount=paid, reason="late_payment", now=now)
    outbox.notify(session, booking, ("late_payment_refunded.parent",), now=now, payload={"refund": paid})
    return Outcome(Reason.LATE_PAYMENT_REFUNDED, booking, Followups(refunds=[refund.id]))


def cancel_unpaid(
    session: Session, *, booking_id: uuid.UUID, reason: Reason, actor: str, now: datetime, note: str | None = None
) -> Booking:
    """Pending -> Cancelled; a no-op when already Cancelled; AlreadyPaid when paid meanwhile."""
    booking = must_get(session, booking_id=booking_id)
    while booking.status == Status.PENDING:
        change = lifecycle.cancel(Status.PENDING, reason=reason, now=now)
        if repo.apply(session, booking, change, actor=actor, note=note):
            return booking
    if booking.status in (Status.CONFIRMED, Status.COMPLETED):
        raise AlreadyPaid()
    return booking


def cancel_if_pending(session: Session, *, booking_id: uuid.UUID, reason: Reason, actor: str, now: datetime) -> str:
    """Pending -> Cancelled as one compare-and-set, for the jobs: the reason, or "skipped" when
    the booking moved meanwhile."""
    booking = repo.get(session, booking_id)
    if booking is None or booking.status != Status.PENDING:
        return "skipped"
    change = lifecycle.cancel(Status.PENDING, reason=reason, now=now)
    return reason.value if repo.apply(session, booking, change, actor=actor) else "skipped"


def cancel_many_if_pending(
    session: Session, *, booking_ids: list[uuid.UUID], reason: Reason, actor: str, now: datetime
) -> set[uuid.UUID]:
    """Pending -> Cancelled for many bookings, for the jobs: one compare-and-set UPDATE and one
    history INSERT (repo.apply_many). The ids that moved; the others had left Pending meanwhile."""
    change = lifecycle.cancel(Status.PENDING, reason=reason, now=now)
    return set(repo.apply_many(session, booking_ids, change, actor=actor))
