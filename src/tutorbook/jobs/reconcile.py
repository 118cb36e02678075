"""Reconcile: compare recent Checkout Sessions at Stripe with the bookings, and repair.

A mismatch is one of:
- paid_not_confirmed: Stripe says paid, the booking is Pending or Cancelled with no refund
  recorded (a lost webhook, a late payment) -> fulfilled: confirmed, or refunded in full;
- pending_but_expired: the checkout expired at Stripe, the booking is still Pending -> Cancelled;
- amount_mismatch, currency_mismatch, other_checkout: Stripe says paid, but not the booking's
  price, not in its currency, or not through its own checkout, and no refund is recorded yet ->
  refunded in full, the booking left as it was (bookings.settling.fulfil);
- paid_without_booking: Stripe says paid and no booking matches -> reported;
- unpaid_at_stripe: the booking counts as paid, Stripe says unpaid -> reported;
- refund_pending: a refund Stripe has not accepted yet -> sent again (same idempotency key),
  reported if it is still pending;
- refund_failed: Stripe refused a refund asked for since `since`, or a stuck one sent again now
  (refused, or naming a payment Stripe does not know) -> marked failed, reported; the run goes on.
Connect (destination charges: bookings with a teacher's account), each paid one whose split is
not recorded, and each refunded one or one paid out with no application fee recorded, updated
since `since`, is read at Stripe:
- split_missing: the transfer and fee are not recorded on the booking -> recorded;
- charge_without_transfer, charge_without_fee: Stripe has no transfer (or no application fee)
  for a paid destination charge -> reported;
- refund_without_reversal: a refund of a destination charge reversed nothing of the teacher's
  transfer (made without reverse_transfer, e.g. in the Dashboard) -> reported: the platform paid
  the teacher's share of it.
Only Checkout Sessions Tutorbook created (metadata type `session-booking`) are compared.
The package purchases (issue #28) are checked against the ledger and their lessons' transfers:
jobs/reconcile_credits.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.bookings import earnings, queries, refunds, settling
from tutorbook.bookings import repository as repo
from tutorbook.bookings.checkout import Checkout
from tutorbook.bookings.lifecycle import REFUSED_PAYMENT_REASONS, Reason, Status
from tutorbook.bookings.models import Booking, Refund
from tutorbook.bookings.payment_states import PaymentKind
from tutorbook.flows import followups
from tutorbook.flows.services import Services
from tutorbook.jobs import reconcile_credits
from tutorbook.jobs.result import PROGRESS_EVERY, JobResult, Progress
from tutorbook.jobs.tasks import cancel_pending, fulfil_paid
from tutorbook.payments import gateway as gw

# A refund younger than this is probably still being sent by the request that asked for it.
REFUND_GRACE = timedelta(minutes=1)
CHECKOUT_TYPE = "session-booking"
# Findings repaired by the one fulfilment: it confirms, or refunds a payment it cannot accept.
_FULFILLED = frozenset({"paid_not_confirmed"} | {r.value for r in REFUSED_PAYMENT_REASONS})


@dataclass(frozen=True)
class Mismatch:
    kind: str
    checkout: Checkout
    booking_id: uuid.UUID | None


def reconcile(
    svc: Services,
    *,
    now: datetime,
    dry_run: bool,  # always passed (jobs.run): no default, which nothing would use
    progress: Progress | None = None,
    since: datetime | None = None,
) -> JobResult:
    """List Checkout Sessions created since `since` (default: the lookback), repair what can be
    repaired, report the rest; then retry refunds stuck in "pending"."""
    result = JobResult("reconcile", dry_run=dry_run, progress=progress)
    since = since or now - timedelta(hours=svc.settings.reconcile_lookback_hours)
    checkouts = _ours(svc.gateway.list_checkouts_sync(created_since=since), progress)
    mismatches = svc.tx_sync(find_mismatches, checkouts)
    for m in mismatches:
        work = (lambda m=m: m.kind) if dry_run else (lambda m=m: _repair(svc, m, now=now))
        result.attempt(m.booking_id, work, kind=m.kind, checkout_id=m.checkout.id)
    _retry_refunds(svc, result, now=now, dry_run=dry_run)
    _check_connect(svc, result, now=now, since=since, dry_run=dry_run)
    reconcile_credits.check_purchases(svc, result)
    reported = {i.refund_id for i in result.items if i.kind == "refund_failed"}
    for refund in svc.tx_sync(_failed_refunds, since=since):
        if refund.id not in reported:
            result.add(refund.session_id, "reported", kind="refund_failed", refund_id=refund.id)
    return result


def _ours(listing: Iterable[Checkout], progress: Progress | None) -> list[Checkout]:
    out = []
    for n, checkout in enumerate(listing, 1):
        if (checkout.metadata or {}).get("type") == CHECKOUT_TYPE:
            out.append(checkout)
        if progress is not None and n % PROGRESS_EVERY == 0:
            progress("listed", n)
    return out


def find_mismatches(session: Session, checkouts: list[Checkout]) -> list[Mismatch]:
    """Each checkout that disagrees with its booking (read only)."""
    by_checkout = queries.by_checkout_ids(session, [c.id for c in checkouts])
    refs = {c.id: _uuid(c.booking_ref) for c in checkouts if c.id not in by_checkout}
    by_id = queries.by_ids(session, [r for r in refs.values() if r is not None])
    found = []
    for c in checkouts:
        # The booking whose checkout it is, else the one its metadata names (whatever its checkout).
        ref = refs.get(c.id)
        booking = by_checkout.get(c.id) or (by_id.get(ref) if ref is not None else None)
        kind = _kind(session, c, booking)
        if kind is not None:
            found.append(Mismatch(kind, c, booking.id if booking else None))
    return found


def _kind(session: Session, c: Checkout, booking: Booking | None) -> str | None:
    if c.paid:
        if booking is None:
            return "paid_without_booking"
        problem = settling.payment_problem(booking, c)
        if problem is not None:
            refunded = c.payment_intent is None or refunds.has_payment_refund(session, payment_intent=c.payment_intent)
            return None if refunded else problem.value
        if booking.status == Status.PENDING or _cancelled_unpaid_unrefunded(session, booking):
            return "paid_not_confirmed"
        return None
    if booking is None or booking.checkout_id != c.id:
        return None  # not the booking's checkout: unpaid, it can be ignored
    if booking.status in (Status.CONFIRMED, Status.COMPLETED) or booking.paid_at is not None:
        return "unpaid_at_stripe"
    if booking.status == Status.PENDING and c.status == "expired":
        # A series' lesson whose card charge failed keeps its time until its own deadline (the
        # series job's), whatever became of the checkout its pay link opened.
        if booking.payment is not None and booking.payment.kind == PaymentKind.OFF_SESSION:
            return None
        return "pending_but_expired"
    return None


def _cancelled_unpaid_unrefunded(session: Session, booking: Booking) -> bool:
    return (
        booking.status == Status.CANCELLED
        and booking.paid_at is None
        and not refunds.has_late_payment_refund(session, booking_id=booking.id)
    )


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def _repair(svc: Services, m: Mismatch, *, now: datetime) -> str:
    if m.kind in _FULFILLED:
        return fulfil_paid(svc, checkout=m.checkout, job="reconcile", now=now)
    if m.kind == "pending_but_expired" and m.booking_id is not None:
        return svc.tx_sync(
            cancel_pending,
            booking_id=m.booking_id,
            reason=Reason.CHECKOUT_EXPIRED,
            job="reconcile",
            now=now,
        )
    return "reported"


def _retry_refunds(svc: Services, result: JobResult, *, now: datetime, dry_run: bool) -> None:
    stuck = svc.tx_sync(_stuck_refunds, now=now)
    for refund_id, booking_id in stuck:
        status = refunds.PENDING if dry_run else followups.send_refund(svc, refund_id=refund_id)
        if status == refunds.PENDING:
            result.add(booking_id, "refund_pending", kind="refund_pending", refund_id=refund_id)
        elif status == "failed":  # refused, or its payment unknown to Stripe: a person must look
            result.add(booking_id, "refund_failed", kind="refund_failed", refund_id=refund_id)
        else:
            result.add(booking_id, f"refund_{status}", refund_id=refund_id)


def _stuck_refunds(session: Session, *, now: datetime) -> list[tuple[uuid.UUID, uuid.UUID]]:
    return [
        (refund_id, session.get_one(Refund, refund_id).session_id)
        for refund_id in refunds.pending_ids(session, older_than=now - REFUND_GRACE, limit=500)
    ]


def _failed_refunds(session: Session, *, since: datetime) -> list[Refund]:
    stmt = sa.select(Refund).where(Refund.status == "failed", Refund.created_at >= since).order_by(Refund.created_at)
    return list(session.scalars(stmt))


def _fee_of(session: Session, booking_id: uuid.UUID) -> int | None:
    booking = repo.get(session, booking_id)
    return booking.platform_fee_amount if booking else None


def _splits_to_check(
    session: Session, *, since: datetime
) -> tuple[list[uuid.UUID], dict[uuid.UUID, Any], dict[uuid.UUID, int | None]]:
    missing = earnings.missing_splits(session)
    todo = dict.fromkeys(
        missing
        + earnings.refunded_destination_charges(session, since=since)
        + earnings.charges_without_fee(session, since=since)
    )
    reads = {booking_id: earnings.split_to_read(session, booking_id=booking_id) for booking_id in todo}
    return missing, reads, {booking_id: _fee_of(session, booking_id) for booking_id in todo}


def _check_connect(svc: Services, result: JobResult, *, now: datetime, since: datetime, dry_run: bool) -> None:
    missing, reads, fees = svc.tx_sync(_splits_to_check, since=since)
    for booking_id, read in reads.items():
        if read is None:
            continue
        try:
            split = svc.gateway.payment_split_sync(read.payment_intent)
        except (gw.GatewayError, gw.CheckoutNotFound):
            result.add(booking_id, "stripe_unavailable", kind="split_missing")
            continue
        if split is None:
            continue
        if split.transfer_id is None:
            result.add(booking_id, "reported", kind="charge_without_transfer")
        if split.fee_id is None and fees[booking_id]:
            result.add(booking_id, "reported", kind="charge_without_fee")
        for refund_id in split.refunds_without_reversal:
            result.add(booking_id, "reported", kind="refund_without_reversal", refund_id=refund_id)
        if booking_id in missing and split.transfer_id is not None:
            if dry_run:
                result.add(booking_id, "split_missing", kind="split_missing")
            else:
                outcome = svc.tx_sync(earnings.record_split, booking_id=booking_id, split=split, now=now)
                result.add(booking_id, outcome, kind="split_missing")
        elif not dry_run:
            svc.tx_sync(earnings.record_split, booking_id=booking_id, split=split, now=now)
