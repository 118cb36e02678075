"""Booking across domains: the async orchestration that calls Stripe between the bookings
service's one-transaction use cases, and runs the follow-ups (refunds, meeting links) after
they commit. Nothing here holds a transaction open while waiting on Stripe."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook import localtime
from tutorbook.bookings import cancelling, crediting, lookup, rescheduling, reserving, settling
from tutorbook.bookings.checkout import Checkout
from tutorbook.bookings.errors import AlreadyPaid, BookingNotFound, PaymentRefused, SlotTaken
from tutorbook.bookings.lifecycle import Reason, Status
from tutorbook.bookings.models import Booking
from tutorbook.bookings.outcomes import Followups, Outcome, OutcomeKind, Reservation
from tutorbook.bookings.policy import RefundChoice
from tutorbook.bookings.schemas import BookIn
from tutorbook.clock import utc_now
from tutorbook.db import lost_race
from tutorbook.db.doors import one_statement
from tutorbook.errors import AppError, BadGateway, BadRequest, Forbidden, GatewayTimeout
from tutorbook.flows import followups
from tutorbook.flows.services import Services
from tutorbook.identity import AuthUser, Role
from tutorbook.meetings import links
from tutorbook.payments import gateway as gw

log = logging.getLogger("tutorbook.flows")
# Attaching the checkout is one UPDATE: no BEGIN / COMMIT around it on PostgreSQL.
_ATTACH_CHECKOUT = one_statement(reserving.attach_checkout)


class CheckoutRefused(AppError):
    """Stripe answered and refused the checkout (e.g. a price below its minimum): saying that the
    provider "could not be reached" would send the parent to try again for nothing."""

    status_code = 422
    message = "The payment provider refused this payment; nothing was charged"


@dataclass(frozen=True)
class Booked:
    """A Pending booking with its Checkout Session, and the names for the answer."""

    booking: Booking
    teacher_name: str
    student_name: str


def line_item(
    *, subject: str, teacher: str, child: str, starts_at: datetime, ends_at: datetime, zone: str, locale: str
) -> str:
    """The checkout's line item: what, with whom, for whom, and when on the parent's clock."""
    return f"{subject} with {teacher} for {child}, {localtime.when(starts_at, ends_at, zone, locale)}"


async def book(
    svc: Services, *, parent: AuthUser, body: BookIn, zone: str | None = None, locale: str = localtime.DEFAULT_LOCALE
) -> Booked:
    """Reserve the slot, open a Checkout Session, and hand back the booking with its URL. The line
    item names the session's time in `zone` (default: the parent's profile zone). With
    `payWith: credit` no checkout: `book_with_credit`."""
    if body.pay_with == "credit":
        return await book_with_credit(svc, parent=parent, body=body)
    try:
        held = await svc.tx(reserving.reserve, parent=parent, body=body, settings=svc.settings, now=utc_now())
    except sa.exc.DBAPIError as exc:  # the exclusion constraint (or a deadlock) decided a race
        if not lost_race(exc):
            raise
        raise SlotTaken() from exc
    booking = held.booking
    if held.reused:
        return Booked(booking, held.teacher_name, held.student_name)
    success, cancel = reserving.checkout_urls(public_url=svc.settings.public_url, booking_id=booking.id)
    assert booking.checkout_expires_at is not None  # reserve() gives every new booking its expiry
    try:
        checkout = await svc.gateway.create_checkout(
            booking_id=str(booking.id),
            amount=booking.price_amount,
            currency=booking.currency,
            product_name=line_item(
                subject=booking.subject,
                teacher=held.teacher_name,
                child=held.student_name,
                starts_at=booking.starts_at,
                ends_at=booking.ends_at,
                zone=localtime.known_zone(zone) or parent.time_zone,
                locale=locale,
            ),
            customer_email=parent.email,
            success_url=success,
            cancel_url=cancel,
            expires_at=booking.checkout_expires_at,
            destination=booking.payout_destination,
            application_fee=booking.platform_fee_amount,
        )
    except (gw.GatewayError, gw.CheckoutNotFound) as exc:
        log.warning("checkout creation failed", extra={"booking_id": str(booking.id)})
        await svc.tx(
            settling.cancel_unpaid, booking_id=booking.id, reason=Reason.CHECKOUT_FAILED, actor="system", now=utc_now()
        )
        if isinstance(exc, gw.Refused):
            raise CheckoutRefused(f"The payment provider refused this payment: {exc}; nothing was charged") from exc
        raise (GatewayTimeout if isinstance(exc, gw.GatewayTimeout) else BadGateway)() from exc
    attached = await svc.tx(_ATTACH_CHECKOUT, booking=booking, checkout=checkout)
    return Booked(attached, held.teacher_name, held.student_name)


def _credit_in_tx(session: Session, *, svc: Services, parent: AuthUser, body: BookIn, now: datetime) -> Reservation:
    def link(booking: Booking, teacher_email: str, teacher_name: str, zone: str) -> dict[str, Any] | None:
        # Made here when the provider calls no one (Jitsi): the answer shows it with no re-read.
        request = links.request_for(booking, teacher_email, teacher_name, parent.email, zone)
        return followups.instant_link_row(svc, booking=booking, request=request, now=now)

    return crediting.book_with_credit(
        session, parent=parent, body=body, settings=svc.settings, platform=svc.terms, now=now, link=link
    )


async def book_with_credit(svc: Services, *, parent: AuthUser, body: BookIn) -> Booked:
    """Book and pay with one credit of the family's wallet, in one transaction and without any
    Stripe call: the booking answers Confirmed, with its meeting link when the provider makes one
    at once (else the link job's retries, as for a paid booking). 409 without a credit."""
    try:
        held = await svc.tx(_credit_in_tx, svc=svc, parent=parent, body=body, now=utc_now())
    except sa.exc.DBAPIError as exc:  # a deadlock or the exclusion constraint decided a race
        if not lost_race(exc):
            raise
        raise SlotTaken() from exc
    booking = held.booking
    if booking.meeting_url is None:
        await followups.run(svc, Followups(links=[booking.id]))
        booking = await svc.tx(lookup.must_get, booking_id=booking.id)
    return Booked(booking, held.teacher_name, held.student_name)


async def withdraw_checkout(
    svc: Services, *, booking: Booking, reason: Reason, actor: str, note: str | None = None
) -> Booking:
    """Expire the Checkout Session at Stripe first, then cancel; if Stripe says it was paid,
    fulfil instead and refuse with AlreadyPaid."""
    if booking.checkout_id:
        try:
            await svc.gateway.expire_checkout(booking.checkout_id, reason=reason.value)
        except gw.CheckoutNotOpen:
            checkout = await svc.gateway.retrieve_checkout(booking.checkout_id)
            if checkout.paid:
                await fulfil(svc, checkout=checkout, actor=actor)
                raise AlreadyPaid() from None
        except gw.CheckoutNotFound:
            pass
        except gw.GatewayTimeout as exc:
            raise GatewayTimeout("The payment provider did not answer; try again in a moment") from exc
        except gw.GatewayError as exc:
            raise BadGateway("The payment provider could not be reached; try again in a moment") from exc
    return await svc.tx(
        settling.cancel_unpaid, booking_id=booking.id, reason=reason, actor=actor, now=utc_now(), note=note
    )


async def cancel_payment(
    svc: Services, *, parent: AuthUser, checkout_id: str | None, booking_id: uuid.UUID | None = None
) -> Booking:
    """The cancel page's call: 404 unknown, 403 not yours, 400 paid, otherwise cancelled (again: no-op).
    The first look is a read (one statement, no BEGIN or COMMIT): the cancelling transaction after
    Stripe's expire reads the booking again and moves it by compare-and-set, so a payment that
    came meanwhile is still seen there (settling.cancel_unpaid: AlreadyPaid)."""
    booking = await svc.read(lookup.own_booking, parent=parent, checkout_id=checkout_id, booking_id=booking_id)
    if booking.status in (Status.CONFIRMED, Status.COMPLETED):
        raise AlreadyPaid()
    if booking.status == Status.CANCELLED:
        return booking
    return await withdraw_checkout(svc, booking=booking, reason=Reason.PAYMENT_CANCELLED, actor=parent.actor)


async def confirm_payment(svc: Services, *, parent: AuthUser, checkout_id: str) -> Booking:
    """The success page's call: a booking Confirmed by this checkout's payment answers from our
    record; otherwise re-read the session from Stripe and fulfil if it is paid; a
    checkout not on record is looked up at Stripe and may name one of the parent's bookings.
    PaymentRefused (409) when the payment cannot pay for the booking (it is refunded)."""
    booking = await svc.tx(lookup.own_booking_or_none, parent=parent, checkout_id=checkout_id)
    if booking is not None and _paid_by_its_checkout(booking):
        # The mix's usual case: the webhook confirmed it first. Stripe would only say again what
        # our record says (`already_fulfilled`); a Pending booking still asks Stripe below.
        return await _with_link(svc, booking)
    try:
        checkout = await svc.gateway.retrieve_checkout(checkout_id)
    except gw.CheckoutNotFound as exc:
        raise BookingNotFound() from exc
    except gw.GatewayError as exc:
        raise BadGateway("The payment provider could not be reached; try again in a moment") from exc
    if booking is None:
        booking = await svc.tx(lookup.own_booking, parent=parent, checkout=checkout)
    outcome = await fulfil(svc, checkout=checkout, actor=parent.actor)
    if outcome.refused is not None:
        raise PaymentRefused(outcome.refused)
    return await _with_link(svc, outcome.booking or booking)


def _paid_by_its_checkout(booking: Booking) -> bool:
    """Confirmed with a Stripe payment on record. `booking` was read by its recorded checkout id,
    and a booking adopts only its own checkout's payment (settling.payment_problem), so that
    checkout paid it: re-reading it at Stripe could not change the answer."""
    paid = booking.paid_at is not None and booking.stripe_payment_intent_id is not None
    return booking.status == Status.CONFIRMED and paid


async def _with_link(svc: Services, booking: Booking) -> Booking:
    """`booking`; a Confirmed one without its meeting link gets it first."""
    if booking.status == Status.CONFIRMED and booking.meeting_url is None:
        # The webhook confirmed it first and its follow-ups are still running: make the link now
        # (idempotent: the first link written wins), so the success page can show it.
        await followups.run(svc, Followups(links=[booking.id]))
        booking = await svc.tx(lookup.must_get, booking_id=booking.id)
    return booking


def fulfil_in_tx(session: Session, *, svc: Services, checkout: Checkout, actor: str, now: datetime) -> Outcome:
    """`bookings.settling.fulfil` and, in the same transaction, an instant meeting link (the one
    fulfilment every path runs: success page, jobs, bulk settlement)."""
    outcome = settling.fulfil(session, checkout=checkout, actor=actor, platform=svc.terms, now=now)
    outcome.followups = followups.make_instant_links(session, svc=svc, followups=outcome.followups, now=now)
    return outcome


async def fulfil(svc: Services, *, checkout: Checkout, actor: str) -> Outcome:
    """The one fulfilment (`bookings.settling.fulfil`), then its follow-ups; the booking re-read,
    unless the fulfilment changed nothing (already paid, not yet paid: the booking as it read it)."""
    outcome = await svc.tx(fulfil_in_tx, svc=svc, checkout=checkout, actor=actor, now=utc_now())
    await followups.run(svc, outcome.followups)
    if outcome.booking is not None and (outcome.followups or outcome.kind not in _UNCHANGED):
        outcome.booking = await svc.tx(lookup.must_get, booking_id=outcome.booking.id)
    return outcome


# What a fulfilment answers when it wrote nothing (the success page after the webhook, mostly).
_UNCHANGED = frozenset({OutcomeKind.ALREADY_FULFILLED, OutcomeKind.AWAITING_PAYMENT})


def fulfil_sync(svc: Services, *, checkout: Checkout, actor: str) -> Outcome:
    """`fulfil` for the jobs: confirm (or refund, for a late payment), then the follow-ups."""
    outcome = svc.tx_sync(fulfil_in_tx, svc=svc, checkout=checkout, actor=actor, now=utc_now())
    followups.run_sync(svc, outcome.followups)
    return outcome


def settle_stale_checkout(
    svc: Services, *, booking_id: uuid.UUID, checkout_id: str, now: datetime, dry_run: bool, job: str = "expire"
) -> str:
    """A Pending booking whose checkout expired by our clock: close the checkout at Stripe so it
    can take no more money, then cancel it `checkout_expired` (or fulfil it, if Stripe says it
    was paid). Returns what happened; Stripe unreachable leaves it Pending for the next run."""
    try:
        paid = close_checkout(svc, checkout_id, dry_run=dry_run)
    except gw.CheckoutNotFound:
        paid = None  # Stripe never heard of it: nothing can be paid
    except gw.GatewayError:
        return "stripe_unavailable"
    if dry_run:
        return "would_fulfil" if paid else "would_cancel"
    if paid is not None:
        return fulfil_stale(svc, booking_id=booking_id, checkout=paid, now=now, job=job)
    return svc.tx_sync(
        settling.cancel_if_pending, booking_id=booking_id, reason=Reason.CHECKOUT_EXPIRED, actor=f"job:{job}", now=now
    )


def fulfil_stale(svc: Services, *, booking_id: uuid.UUID, checkout: Checkout, now: datetime, job: str) -> str:
    """A stale booking's closed checkout that was paid: fulfil it; then, if the payment was
    refused (refunded) and the booking is still Pending with a checkout that can take no more
    money, it expires like an unpaid one. "confirmed", or e.g. "amount_mismatch, checkout_expired"."""
    kind = fulfil_sync(svc, checkout=checkout, actor=f"job:{job}").kind
    cancelled = svc.tx_sync(
        settling.cancel_if_pending, booking_id=booking_id, reason=Reason.CHECKOUT_EXPIRED, actor=f"job:{job}", now=now
    )
    return kind if cancelled == "skipped" else f"{kind}, {cancelled}"


def close_checkout(svc: Services, checkout_id: str, *, dry_run: bool = False) -> Checkout | None:
    """Make sure the checkout can no longer take money (expire it; one Stripe refuses as not open
    is re-read); the checkout if it was paid, else None. Dry run: only read it."""
    if dry_run:
        checkout = svc.gateway.retrieve_checkout_sync(checkout_id)
    else:
        try:
            svc.gateway.expire_checkout_sync(checkout_id, reason=Reason.CHECKOUT_EXPIRED.value)
            return None
        except gw.CheckoutNotOpen:
            checkout = svc.gateway.retrieve_checkout_sync(checkout_id)
    return checkout if checkout.paid else None


async def cancel_booking(svc: Services, *, user: AuthUser, booking_id: uuid.UUID, note: str | None = None) -> Booking:
    """Cancel a booking: a Pending one withdraws its checkout; a Confirmed one is refunded per
    policy, `note` (optional: the canceller's reason) in its history and notices."""
    booking = await svc.tx(lookup.get_for, user=user, booking_id=booking_id)
    if booking.status == Status.PENDING:
        if user.role == Role.PARENT:
            return await cancel_payment(svc, parent=user, checkout_id=None, booking_id=booking.id)
        return await withdraw_checkout(svc, booking=booking, reason=cancelling.cancel_reason(user), actor=user.actor)
    if booking.status == Status.COMPLETED:
        raise BadRequest("A completed session cannot be cancelled")
    outcome = await svc.tx(
        cancelling.cancel_confirmed, user=user, booking_id=booking_id, settings=svc.settings, now=utc_now(), note=note
    )
    await followups.run(svc, outcome.followups)
    return await svc.tx(lookup.must_get, booking_id=booking_id)


async def refund_as_admin(
    svc: Services, *, admin: AuthUser, booking_id: uuid.UUID, amount: int, note: str, key: str
) -> tuple[Booking, bool]:
    """An admin gives back part of a paid booking's payment, the booking kept: recorded in one
    transaction, then sent to Stripe (a failure is re-sent by reconcile). (booking, new): new is
    False when the form's key was used already (nothing more is refunded)."""
    outcome = await svc.tx(
        cancelling.refund_as_admin, admin=admin, booking_id=booking_id, amount=amount, note=note, key=key, now=utc_now()
    )
    await followups.run(svc, outcome.followups)
    return await svc.tx(lookup.must_get, booking_id=booking_id), outcome.kind == OutcomeKind.REFUNDED


async def cancel_as_admin(
    svc: Services, *, admin: AuthUser, booking_id: uuid.UUID, refund: RefundChoice, note: str
) -> Booking:
    """An admin cancels with a chosen refund and a reason (both in the history, the admin the
    actor): a Pending booking withdraws its checkout (nothing was paid, nothing to refund); a
    Confirmed one is cancelled and refunded as chosen, the refund sent after the commit."""
    if admin.role != Role.ADMIN:
        raise Forbidden("Only an admin chooses the refund")
    note = cancelling.check_note(note)
    refund = RefundChoice(refund)
    booking = await svc.tx(lookup.must_get, booking_id=booking_id)
    if booking.status == Status.PENDING:
        done = await withdraw_checkout(
            svc, booking=booking, reason=Reason.ADMIN_CANCELLED, actor=admin.actor, note=note
        )
        # Recorded apart from the status move: Stripe's checkout.session.expired webhook may have
        # cancelled the booking first (actor: the event), and the admin's reason must not be lost.
        await svc.tx(
            cancelling.record_admin_action,
            booking_id=booking_id,
            action="cancel",
            actor=admin.actor,
            note=note,
            detail="checkout withdrawn: nothing was paid, nothing refunded",
            now=utc_now(),
        )
        return done
    if booking.status != Status.CONFIRMED:
        raise BadRequest(f"A {Status(booking.status).label} booking cannot be cancelled")
    outcome = await svc.tx(
        cancelling.cancel_as_admin,
        admin=admin,
        booking_id=booking_id,
        refund=refund,
        note=note,
        settings=svc.settings,
        now=utc_now(),
    )
    if outcome.kind != OutcomeKind.CANCELLED:
        raise BadRequest("The booking changed meanwhile; reload and try again")
    await followups.run(svc, outcome.followups)
    return await svc.tx(lookup.must_get, booking_id=booking_id)


async def reschedule(svc: Services, *, user: AuthUser, booking_id: uuid.UUID, starts_at: datetime) -> Booking:
    """Move a Confirmed booking to another time (one transaction: `bookings.rescheduling.reschedule`),
    then its meeting (a Google event is moved; a Jitsi room stays); the booking re-read."""
    try:
        moved = await svc.tx(
            rescheduling.reschedule,
            user=user,
            booking_id=booking_id,
            starts_at=starts_at,
            settings=svc.settings,
            now=utc_now(),
        )
    except sa.exc.DBAPIError as exc:  # the exclusion constraint (or a deadlock) decided a race
        if not lost_race(exc):
            raise
        raise SlotTaken() from exc
    if moved.followups:
        await followups.run(svc, moved.followups)
    return await svc.tx(lookup.must_get, booking_id=booking_id)


__all__ = [
    "Booked",
    "book",
    "book_with_credit",
    "cancel_as_admin",
    "cancel_booking",
    "cancel_payment",
    "close_checkout",
    "confirm_payment",
    "fulfil",
    "fulfil_stale",
    "fulfil_sync",
    "reschedule",
    "settle_stale_checkout",
    "withdraw_checkout",
]
