"""Weekly series across domains (issue #29): the async orchestration around the series' use cases
(`tutorbook.series`): make the series, then its parent's Stripe Customer and the first week's
Checkout (which saves the card); a failed week's own Checkout; the rest cancelled from a date;
and, for the `series` job, each later week charged off-session between transactions."""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from tutorbook import localtime
from tutorbook.bookings import reserving, settling
from tutorbook.bookings.errors import AlreadyPaid
from tutorbook.bookings.lifecycle import Reason, Status
from tutorbook.bookings.models import Booking
from tutorbook.bookings.outcomes import Followups
from tutorbook.clock import utc_now
from tutorbook.db import lost_race
from tutorbook.db.doors import one_statement
from tutorbook.errors import BadGateway, Conflict, GatewayTimeout
from tutorbook.flows import booking as booking_flows
from tutorbook.flows import followups
from tutorbook.flows.services import Services
from tutorbook.identity import AuthUser
from tutorbook.payments import gateway as gw
from tutorbook.payments.port import OffSessionCharge
from tutorbook.series import charging, service
from tutorbook.series import repository as repo
from tutorbook.series.schemas import PreviewOut, SeriesIn, SeriesOut, SeriesPreviewIn

log = logging.getLogger("tutorbook.flows")
_ATTACH_CHECKOUT = one_statement(reserving.attach_checkout)
# Stripe wants a checkout's expires_at 30 minutes to 24 hours ahead.
LINK_TTL_MIN, LINK_TTL_MAX = timedelta(minutes=31), timedelta(hours=23, minutes=55)


async def preview(svc: Services, *, parent: AuthUser, body: SeriesPreviewIn) -> PreviewOut:
    """Each week: its start and whether it is free (busy, time off, outside hours, calendar)."""
    return await svc.read(service.preview, parent=parent, body=body, now=utc_now())


async def create(
    svc: Services, *, parent: AuthUser, body: SeriesIn, zone: str | None = None, locale: str = localtime.DEFAULT_LOCALE
) -> SeriesOut:
    """Hold every chosen week (or none), then the parent's Customer and the first week's Checkout
    saving the card for the others. Stripe failing: every week is let go, nothing charged."""
    try:
        made = await svc.tx(
            service.create, parent=parent, body=body, settings=svc.settings, platform=svc.terms, now=utc_now()
        )
    except sa.exc.DBAPIError as exc:  # the exclusion constraint (or a deadlock) decided a race
        if not lost_race(exc):
            raise
        raise Conflict("Some of these weeks were just taken; look at the weeks again") from exc
    first = made.first
    if body.pay_with == "credit":  # paid and confirmed already: the meeting links, then the series
        links = Followups(links=[b.id for b in made.held])
        await followups.run(svc, await svc.tx(_instant_links, svc=svc, links=links, now=utc_now()))
        return await svc.tx(service.view, series=made.series)
    try:
        customer = await svc.tx(repo.customer_of, parent_id=parent.id) or await svc.gateway.create_customer(
            parent_id=str(parent.id), email=parent.email, name=parent.full_name
        )
        await svc.tx(repo.set_customer, series_id=made.series.id, customer=customer)
        success, cancel = reserving.checkout_urls(public_url=svc.settings.public_url, booking_id=first.id)
        assert first.checkout_expires_at is not None
        checkout = await svc.gateway.create_series_checkout(
            booking_id=str(first.id),
            amount=first.price_amount,
            currency=first.currency,
            product_name=booking_flows.line_item(
                subject=first.subject,
                teacher=made.teacher_name,
                child=made.student_name,
                starts_at=first.starts_at,
                ends_at=first.ends_at,
                zone=localtime.known_zone(zone) or parent.time_zone,
                locale=locale,
            )
            + " (weekly; the card is saved for the next lessons)",
            customer_email=parent.email,
            success_url=success,
            cancel_url=cancel,
            expires_at=first.checkout_expires_at,
            destination=first.payout_destination,
            application_fee=first.platform_fee_amount,
            customer=customer,
            save_card=True,
        )
    except (gw.GatewayError, gw.CheckoutNotFound) as exc:
        log.warning("series checkout failed", extra={"series_id": str(made.series.id)})
        await svc.tx(_let_go, series_id=made.series.id, now=utc_now())
        if isinstance(exc, gw.Refused):
            raise booking_flows.CheckoutRefused(f"The payment provider refused this payment: {exc}") from exc
        raise (GatewayTimeout if isinstance(exc, gw.GatewayTimeout) else BadGateway)() from exc
    await svc.tx(_ATTACH_CHECKOUT, booking=first, checkout=checkout)
    return await svc.tx(service.view, series=made.series)


def _instant_links(session: sa.orm.Session, *, svc: Services, links: Followups, now: datetime) -> Followups:
    return followups.make_instant_links(session, svc=svc, followups=links, now=now)


def _let_go(session: sa.orm.Session, *, series_id: uuid.UUID, now: datetime) -> None:
    """The series' checkout could not be made: every week it holds is cancelled unpaid."""
    for _, booking in repo.occurrences(session, series_id):
        settling.cancel_if_pending(
            session, booking_id=booking.id, reason=Reason.CHECKOUT_FAILED, actor="system", now=now
        )


async def show(svc: Services, *, user: AuthUser, series_id: uuid.UUID) -> SeriesOut:
    return await svc.read(service.show, user=user, series_id=series_id)


async def cancel_from(svc: Services, *, user: AuthUser, series_id: uuid.UUID, day: date) -> SeriesOut:
    """Cancel the occurrence on `day` and every later one, each by its own terms (a paid one
    refunded as a lone booking is). An open checkout among them is withdrawn at Stripe first."""
    held = await svc.tx(service.to_cancel_from, user=user, series_id=series_id, day=day)
    for booking in held:
        if booking.status == Status.PENDING and booking.checkout_id:
            try:
                await booking_flows.withdraw_checkout(
                    svc, booking=booking, reason=Reason.PAYMENT_CANCELLED, actor=user.actor
                )
            except AlreadyPaid:
                pass  # paid meanwhile: Confirmed now, cancelled with its refund below
    done = await svc.tx(
        service.cancel_from, user=user, series_id=series_id, day=day, settings=svc.settings, now=utc_now()
    )
    await followups.run(svc, done.followups)
    return await svc.read(service.show, user=user, series_id=series_id)


async def pay_lesson(svc: Services, *, parent: AuthUser, booking_id: uuid.UUID) -> Booking:
    """The emailed link: this lesson's own Checkout (its card charge failed), open until its
    deadline (at most Stripe's 24 hours; the link makes a new one after that)."""
    now = utc_now()
    booking = await svc.tx(charging.payable, parent=parent, booking_id=booking_id, now=now)
    previous = booking.checkout_id
    if previous and booking.checkout_expires_at and booking.checkout_expires_at > now:
        try:
            if (await svc.gateway.retrieve_checkout(previous)).status == "open":
                return booking  # the link opened before is still open
        except (gw.GatewayError, gw.CheckoutNotFound):
            pass
    deadline = await svc.tx(charging.deadline_of, booking_id=booking_id)
    assert deadline is not None
    expires = min(deadline, now + LINK_TTL_MAX)
    if expires < now + LINK_TTL_MIN:
        expires = now + LINK_TTL_MIN  # the deadline still cancels it; Stripe wants 30 minutes
    success, cancel = reserving.checkout_urls(public_url=svc.settings.public_url, booking_id=booking.id)
    try:
        checkout = await svc.gateway.create_series_checkout(
            booking_id=str(booking.id),
            amount=booking.price_amount,
            currency=booking.currency,
            product_name=f"{booking.subject}, weekly lesson of {booking.starts_at:%Y-%m-%d}",
            customer=None,
            customer_email=parent.email,
            success_url=success,
            cancel_url=cancel,
            expires_at=expires,
            destination=booking.payout_destination,
            application_fee=booking.platform_fee_amount,
            attempt=f"after-{previous}" if previous else None,  # a new checkout once the last one closed
        )
    except gw.GatewayTimeout as exc:
        raise GatewayTimeout() from exc
    except (gw.GatewayError, gw.CheckoutNotFound) as exc:
        raise BadGateway() from exc
    return await svc.tx(_ATTACH_CHECKOUT, booking=booking, checkout=checkout)


# -- the job's side -------------------------------------------------------------------------


def charge_week(svc: Services, *, booking_id: uuid.UUID, now: datetime, dry_run: bool) -> str:
    """Charge one due week off-session: "confirmed", "declined", "requires_action", "waiting"
    (the first week is not paid yet), "skipped", or "stripe_unavailable" (tried next run)."""
    if dry_run:
        return "would_charge"
    claimed = svc.tx_sync(charging.claim, booking_id=booking_id, now=now)
    if isinstance(claimed, str):
        return claimed
    try:
        methods = svc.gateway.list_payment_methods_sync(claimed.customer)
        if not methods:
            charge = OffSessionCharge("declined", None, None, claimed.amount, claimed.currency, "no_saved_card")
        else:
            charge = svc.gateway.charge_off_session_sync(
                customer=claimed.customer,
                payment_method=methods[0].id,  # the newest card saved
                amount=claimed.amount,
                currency=claimed.currency,
                idempotency_key=f"series-charge-{claimed.booking_id}",
                metadata={"booking_id": str(claimed.booking_id), "type": "session-booking"},
                destination=claimed.destination,  # the teacher's share, as a lone booking's checkout
                application_fee=claimed.application_fee,
            )
    except gw.Refused:
        # Stripe refuses the charge itself (not the card): the parent pays through the link
        # instead, a Checkout like any booking's, rather than the week waiting for nothing.
        log.warning("off-session charge refused", extra={"booking_id": str(booking_id)})
        svc.tx_sync(charging.failed, booking_id=booking_id, failure="declined", settings=svc.settings, now=now)
        return "stripe_refused"
    except gw.GatewayError:  # unreachable: tried again next run (the idempotency key charges once)
        svc.tx_sync(charging.unclaim, booking_id=booking_id)
        return "stripe_unavailable"
    if charge.succeeded and charge.payment_intent:
        outcome = svc.tx_sync(
            _paid_in_tx, svc=svc, booking_id=booking_id, payment_intent=charge.payment_intent, now=utc_now()
        )
        followups.run_sync(svc, outcome)
        return "confirmed"
    return svc.tx_sync(charging.failed, booking_id=booking_id, failure=charge.outcome, settings=svc.settings, now=now)


def _paid_in_tx(
    session: sa.orm.Session, *, svc: Services, booking_id: uuid.UUID, payment_intent: str, now: datetime
) -> Followups:
    outcome = charging.paid(session, booking_id=booking_id, payment_intent=payment_intent, platform=svc.terms, now=now)
    return followups.make_instant_links(session, svc=svc, followups=outcome.followups, now=now)
