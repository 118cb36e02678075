"""Work left after a booking's transaction commits: refunds to send to Stripe, meeting links to
make or delete. Each is a call to an outside service between two short transactions, never
inside one, and never raises: what fails is retried by the jobs (the refund outbox, the
meeting-links job)."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tutorbook.bookings import earnings, refunds
from tutorbook.bookings.models import Booking
from tutorbook.bookings.outcomes import Followups
from tutorbook.clock import utc_now
from tutorbook.flows.services import Services, in_thread
from tutorbook.meetings import links, policy
from tutorbook.meetings.base import MeetingError, MeetingLink, MeetingRequest
from tutorbook.payments import gateway as gw

log = logging.getLogger("tutorbook.flows")


async def run(svc: Services, followups: Followups) -> None:
    """Send refunds and make or delete meeting links, in a worker thread, never raising."""
    if followups:
        await in_thread(run_sync, svc, followups)


def run_sync(svc: Services, followups: Followups) -> None:
    for booking_id in followups.splits:
        record_split(svc, booking_id=booking_id)
    for refund_id in followups.refunds:
        send_refund(svc, refund_id=refund_id)
    for booking_id in followups.links:
        ensure_link(svc, booking_id=booking_id, now=utc_now())
    for provider, external_id, url in followups.unlinks:
        remove_link(svc, provider=provider, external_id=external_id, url=url)
    for booking_id in followups.moves:
        move_link(svc, booking_id=booking_id)


def make_instant_links(session: Session, *, svc: Services, followups: Followups, now: datetime) -> Followups:
    """Make the meeting links of `followups` in the caller's transaction when the provider calls
    no one to make one (Jitsi), so a booking is confirmed together with its link; the follow-ups
    left for after the commit. With a provider that calls out (Google) nothing changes here."""
    if not followups.links or not svc.meetings.instant:
        return followups
    for booking_id in followups.links:
        todo = links.to_make(session, booking_id=booking_id)
        if todo is None:
            continue
        links.record(session, booking_id=booking_id, outcome=_ask_provider(svc, *todo, now=now))
    return dataclasses.replace(followups, links=[])


def instant_link_row(
    svc: Services, *, booking: Booking, request: MeetingRequest, now: datetime
) -> dict[str, Any] | None:
    """A booking made in this transaction gets its link in it, when the provider calls no one to
    make one (Jitsi): asked with what the caller knows (no read), answered as the row to store, for
    the booking's own statement to write (a credit booking's; no read back). None when the
    provider calls out (Google): the follow-ups make it after the commit."""
    if not svc.meetings.instant:
        return None
    return links.row_for(booking.id, _ask_provider(svc, request, 0, now=now))


def _ask_provider(svc: Services, request: MeetingRequest, attempts: int, *, now: datetime) -> policy.LinkOutcome:
    """One attempt at the configured provider (or, after too many failures, the fallback)."""
    return policy.create_link(
        primary=svc.meetings,
        fallback=svc.meetings_fallback,
        request=request,
        attempts=attempts,
        max_failures=svc.settings.meeting_max_failures,
        now=now,
    )


def send_refund(svc: Services, *, refund_id: uuid.UUID) -> str:
    """Send one pending refund to Stripe and record the answer; returns the refund's status."""
    todo = svc.tx_sync(refunds.to_send, refund_id=refund_id)
    if isinstance(todo, str):
        return todo
    if not todo.payment_intent:
        log.error("refund without a payment intent", extra={"refund_id": str(refund_id)})
        return refunds.PENDING
    try:
        # A destination charge's refund pulls the teacher's share back and returns the fee (if it
        # has one: a 0 % platform fee makes no application fee, and Stripe refuses to refund none).
        connect, with_fee = todo.connect, todo.with_fee
        if todo.other_payment:
            connect, with_fee = svc.gateway.destination_of_sync(todo.payment_intent)
        result = svc.gateway.refund_sync(
            payment_intent=todo.payment_intent,
            amount=todo.amount,
            refund_key=f"refund-{refund_id}",
            booking_id=str(todo.booking_id),
            connect=connect,
            with_fee=with_fee,
        )
    except (gw.RefundRefused, gw.CheckoutNotFound) as exc:
        # Refused, or the payment is unknown to Stripe (a 404): sending it again cannot succeed,
        # so it is failed (reconcile reports it as `refund_failed`) instead of stopping every run.
        log.error("stripe refused a refund", extra={"refund_id": str(refund_id), "error": str(exc)[:200]})
        failed = _record(svc, refund_id=refund_id, stripe_id=None, status="failed", counted=0)
        if not todo.other_payment:
            _refund_what_is_left(svc, refund_id=refund_id, payment_intent=todo.payment_intent)
        return failed
    except gw.GatewayError:
        log.warning("refund not sent; will retry", extra={"refund_id": str(refund_id)})
        return refunds.PENDING
    status = refunds.FROM_STRIPE.get(result.status, result.status)
    recorded = _record(svc, refund_id=refund_id, stripe_id=result.id, status=status, counted=result.amount)
    if todo.connect:
        record_split(svc, booking_id=todo.booking_id)
    return recorded


def _refund_what_is_left(svc: Services, *, refund_id: uuid.UUID, payment_intent: str) -> None:
    """Stripe refused a refund of the booking's payment, most likely because part of it was
    refunded at Stripe (the dashboard) and the app never heard: ask again for what is left of the
    charge, as a new refund row (its own idempotency key; the reconcile job resends it if this
    attempt fails), so the parent is not left with nothing."""
    try:
        split = svc.gateway.payment_split_sync(payment_intent)
    except (gw.GatewayError, gw.CheckoutNotFound):
        log.error("refund refused and the charge could not be read", extra={"refund_id": str(refund_id)})
        return
    if split is None:
        return
    rest = svc.tx_sync(refunds.replace_refused, refund_id=refund_id, refunded_at_stripe=split.refunded, now=utc_now())
    if rest is None:
        return
    sent = send_refund(svc, refund_id=rest)
    if sent == "succeeded":
        svc.tx_sync(refunds.at_least_refunded, refund_id=rest, total=split.refunded, now=utc_now())


def record_split(svc: Services, *, booking_id: uuid.UUID) -> str:
    """Read a destination charge's split (transfer, fee, their reversals) from Stripe and
    record it; a Stripe failure leaves it to the reconcile job."""
    todo = svc.tx_sync(earnings.split_to_read, booking_id=booking_id)
    if todo is None:
        return "skipped"
    try:
        split = svc.gateway.payment_split_sync(todo.payment_intent)
    except (gw.GatewayError, gw.CheckoutNotFound):
        log.warning("payment split not read; reconcile will", extra={"booking_id": str(booking_id)})
        return "stripe_unavailable"
    if split is None:
        return "not_charged"
    return svc.tx_sync(earnings.record_split, booking_id=booking_id, split=split, now=utc_now())


def _record(svc: Services, *, refund_id: uuid.UUID, stripe_id: str | None, status: str, counted: int) -> str:
    svc.tx_sync(
        refunds.record_answer, refund_id=refund_id, stripe_id=stripe_id, status=status, counted=counted, now=utc_now()
    )
    log.info("refund recorded", extra={"refund_id": str(refund_id), "status": status, "amount": counted})
    return status


def ensure_link(svc: Services, *, booking_id: uuid.UUID, now: datetime) -> str:
    """Give a Confirmed booking its meeting link (one attempt); returns what happened."""
    todo = svc.tx_sync(links.to_make, booking_id=booking_id)
    if todo is None:
        return "skipped"
    return svc.tx_sync(links.record, booking_id=booking_id, outcome=_ask_provider(svc, *todo, now=now))


def regenerate_link(svc: Services, *, actor: str, booking_id: uuid.UUID, note: str | None, now: datetime) -> str:
    """An operator's new meeting link: forget the old one (recorded in the booking's actions),
    delete the old meeting where the provider keeps one, make a new one (one attempt; the
    meeting-links job retries). Returns what the provider did."""
    provider, external_id, url = svc.tx_sync(links.reset, booking_id=booking_id, actor=actor, note=note, now=now)
    remove_link(svc, provider=provider, external_id=external_id, url=url)
    return ensure_link(svc, booking_id=booking_id, now=now)


def move_link(svc: Services, *, booking_id: uuid.UUID) -> str:
    """Move a rescheduled booking's meeting to its new time where the provider keeps one (a
    Google event is patched; a Jitsi room stays); returns what happened. A failure is logged and
    left on the booking (meeting_error `move_failed:`): the link itself still works."""
    todo = svc.tx_sync(links.to_move, booking_id=booking_id)
    if todo is None:
        return "skipped"
    request, link = todo
    target = svc.meetings if svc.meetings.name == link.provider else svc.meetings_fallback
    if target.name != link.provider:
        return "skipped"
    try:
        moved, error = target.move(link, request), None
    except MeetingError as exc:
        log.warning("meeting not moved", extra={"booking_id": str(booking_id), "error": str(exc)[:200]})
        moved, error = None, exc.code
    if moved is link:  # the provider keeps no time (a Jitsi room): nothing to record
        return "unchanged"
    return svc.tx_sync(links.record_move, booking_id=booking_id, starts_at=request.starts_at, link=moved, error=error)


def remove_link(svc: Services, *, provider: str | None, external_id: str | None, url: str | None) -> None:
    """Delete the meeting behind a cancelled booking's link, where the provider keeps one."""
    if not url or not provider:
        return
    target = svc.meetings if svc.meetings.name == provider else svc.meetings_fallback
    if target.name != provider:
        return
    try:
        target.delete(MeetingLink(url=url, provider=provider, external_id=external_id))
    except MeetingError as exc:
        log.warning("meeting not deleted", extra={"provider": provider, "error": str(exc)[:200]})
