"""Booking use cases. Each database step is one transaction; Stripe is called between them,
never inside one, so a slow Stripe holds no lock and no connection."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.accounts import service as accounts
from tutorbook.accounts.dependencies import AuthUser
from tutorbook.accounts.models import Role
from tutorbook.bookings import lifecycle, policy
from tutorbook.bookings import repository as repo
from tutorbook.bookings.lifecycle import Reason, Status
from tutorbook.bookings.models import PrivateSession
from tutorbook.bookings.schemas import BookIn
from tutorbook.clock import utc_now
from tutorbook.config import Settings
from tutorbook.errors import BadGateway, BadRequest, Conflict, Forbidden, GatewayTimeout, NotFound, Unprocessable
from tutorbook.payments import gateway as gw
from tutorbook.payments import refunds
from tutorbook.services import Services
from tutorbook.teachers import service as teachers
from tutorbook.teachers import slots

log = logging.getLogger("tutorbook.bookings")

CHECKOUT_TEMPLATE = "{CHECKOUT_SESSION_ID}"
# Stripe wants expires_at at least 30 minutes after creation; keep a margin for clock skew.
EXPIRY_MARGIN = timedelta(minutes=1)


class SlotTaken(Conflict):
    message = "This time is no longer free; choose another slot"


class AlreadyPaid(BadRequest):
    message = "Cannot cancel - payment already processed"


class BookingNotFound(NotFound):
    message = "Session not found"


class PaymentRefused(Conflict):
    """A paid checkout that could not pay for the booking: refunded in full, booking unchanged."""

    messages = {
        Reason.AMOUNT_MISMATCH: "This payment's amount is not the booking's price",
        Reason.CURRENCY_MISMATCH: "This payment's currency is not the booking's",
        Reason.OTHER_CHECKOUT: "This payment was not made through the booking's checkout",
    }

    def __init__(self, reason: Reason):
        super().__init__(
            f"{self.messages[reason]}; it is refunded in full and the booking is unchanged",
            data={"reason": reason.value},
        )
        self.reason = reason


@dataclass
class Followups:
    """Work to do after the commit: refunds to send to Stripe, meeting links to make or delete."""

    refunds: list[uuid.UUID] = field(default_factory=list)
    links: list[uuid.UUID] = field(default_factory=list)
    unlinks: list[tuple[str | None, str | None, str | None]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.refunds or self.links or self.unlinks)

    def extend(self, other: Followups) -> None:
        self.refunds += other.refunds
        self.links += other.links
        self.unlinks += other.unlinks


@dataclass
class Outcome:
    kind: str
    booking: PrivateSession | None = None
    followups: Followups = field(default_factory=Followups)
    refused: Reason | None = None  # the payment could not pay for the booking and is refunded


def price_for(*, hourly_rate: int, minutes: int) -> int:
    """Minor units for `minutes` at `hourly_rate`, rounded half up."""
    return (hourly_rate * minutes + 30) // 60


# -- reading ---------------------------------------------------------------------------


def get_for(session: Session, *, user: AuthUser, booking_id: uuid.UUID) -> PrivateSession:
    """A booking the caller may see: owner parent, its teacher, or an admin (403 otherwise)."""
    booking = repo.get(session, booking_id)
    if booking is None:
        raise BookingNotFound()
    if not may_see(user, booking):
        raise Forbidden("This booking is not yours")
    return booking


def may_see(user: AuthUser, booking: PrivateSession) -> bool:
    return (
        user.role == Role.ADMIN
        or (user.role == Role.PARENT and booking.parent_id == user.id)
        or (user.role == Role.TEACHER and booking.teacher_id == user.id)
    )


# -- booking ---------------------------------------------------------------------------


def reserve(
    session: Session, *, parent: AuthUser, body: BookIn, settings: Settings, now: datetime
) -> tuple[PrivateSession, bool, tuple[str, str]]:
    """Validate and insert a Pending booking holding the slot: (booking, reused, (teacher name,
    student name)); reused when the same parent retries the same slot while their checkout is
    still open. The names come along so booking takes two short transactions, not four."""
    student = accounts.own_student(session, parent_id=parent.id, student_id=body.student_id)
    # The profile, the teacher's name and (with the guard) the teacher's lock in one query.
    found = repo.teacher_for_booking(session, body.teacher_id, lock=settings.booking_guard)
    if found is None:
        raise NotFound("Teacher not found")
    profile, teacher_name = found
    names = (teacher_name, student.full_name)
    start, end = body.starts_at, body.starts_at + timedelta(minutes=body.duration_minutes)
    _check_request(session, profile=profile, body=body, start=start, end=end, now=now)
    clashes = repo.overlapping(session, teacher_id=body.teacher_id, start=start, end=end)
    for other in clashes:
        if _same_open_checkout(other, parent=parent, body=body, start=start, end=end, now=now):
            return other, True, names  # same teacher and, by _same_open_checkout, same student
    if clashes:
        raise SlotTaken()
    booking = PrivateSession(
        id=uuid.uuid4(),
        parent_id=parent.id,
        student_id=body.student_id,
        teacher_id=body.teacher_id,
        subject=body.subject,
        starts_at=start,
        ends_at=end,
        price_amount=price_for(hourly_rate=profile.hourly_rate, minutes=body.duration_minutes),
        currency=profile.currency,
        checkout_expires_at=now + timedelta(minutes=settings.checkout_ttl_minutes) + EXPIRY_MARGIN,
    )
    repo.insert(session, booking, lifecycle.book(now=now), actor=parent.actor)
    return booking, False, names


def _check_request(session, *, profile, body: BookIn, start, end, now) -> None:
    problems = []
    if profile.subjects and body.subject.lower() not in {s.lower() for s in profile.subjects}:
        problems.append({"field": "subject", "message": "this teacher does not teach it"})
    if profile.hourly_rate <= 0:
        problems.append({"field": "teacherId", "message": "this teacher has no price yet"})
    if start <= now:
        problems.append({"field": "startsAt", "message": "must be in the future"})
    elif start > now + timedelta(days=366):
        problems.append({"field": "startsAt", "message": "at most a year ahead"})
    if start.second or start.microsecond or start.minute % 5:
        problems.append({"field": "startsAt", "message": "start on a whole 5-minute mark"})
    if problems:
        raise Unprocessable("This booking cannot be made", data=problems)
    if not slots.within_windows(
        teachers.windows(session, profile.user_id), zone=profile.time_zone, start=start, end=end
    ):
        raise Unprocessable(
            "This time is outside the teacher's availability",
            data=[{"field": "startsAt", "message": "outside availability"}],
        )


def _same_open_checkout(other, *, parent, body, start, end, now) -> bool:
    return (
        other.parent_id == parent.id
        and other.student_id == body.student_id
        and other.status == Status.PENDING
        and other.starts_at == start
        and other.ends_at == end
        and other.stripe_session_id is not None
        and other.checkout_expires_at is not None
        and other.checkout_expires_at > now
    )


def attach_checkout(session: Session, *, booking_id: uuid.UUID, checkout: gw.Checkout) -> PrivateSession:
    """Store the Checkout Session's id, URL and expiry on the booking."""
    booking = repo.get(session, booking_id)
    repo.set_fields(
        session,
        booking,
        stripe_session_id=checkout.id,
        checkout_url=checkout.url,
        checkout_expires_at=checkout.expires_at or booking.checkout_expires_at,
    )
    return booking


def checkout_urls(*, public_url: str, booking_id: uuid.UUID) -> tuple[str, str]:
    """success_url and cancel_url exactly as the frontend expects them."""
    base = public_url.rstrip("/")
    success = f"{base}/payment/success?session_id={CHECKOUT_TEMPLATE}&type=session-booking"
    cancel = f"{base}/payment/cancel?session_id={CHECKOUT_TEMPLATE}&type=session-booking&booking_id={booking_id}"
    return success, cancel


async def book(svc: Services, *, parent: AuthUser, body: BookIn) -> tuple[PrivateSession, tuple[str, str]]:
    """Reserve the slot, open a Checkout Session, and hand back the booking with its URL, and
    the (teacher, student) names for the answer."""
    try:
        booking, reused, names = await svc.tx(reserve, parent=parent, body=body, settings=svc.settings, now=utc_now())
    except sa.exc.IntegrityError as exc:  # the PostgreSQL exclusion constraint caught a race
        raise SlotTaken() from exc
    if reused:
        return booking, names
    success, cancel = checkout_urls(public_url=svc.settings.public_url, booking_id=booking.id)
    try:
        checkout = await svc.gateway.create_checkout(
            booking_id=str(booking.id),
            amount=booking.price_amount,
            currency=booking.currency,
            product_name=f"{booking.subject} with {names[0]}",
            customer_email=parent.email,
            success_url=success,
            cancel_url=cancel,
            expires_at=booking.checkout_expires_at,
        )
    except (gw.GatewayError, gw.CheckoutNotFound) as exc:
        log.warning("checkout creation failed", extra={"booking_id": str(booking.id)})
        await svc.tx(cancel_unpaid, booking_id=booking.id, reason=Reason.CHECKOUT_FAILED, actor="system", now=utc_now())
        raise (GatewayTimeout if isinstance(exc, gw.GatewayTimeout) else BadGateway)() from exc
    return await svc.tx(attach_checkout, booking_id=booking.id, checkout=checkout), names


# -- payment ---------------------------------------------------------------------------


def _named_booking(session: Session, checkout: gw.Checkout) -> PrivateSession | None:
    """The booking whose checkout this is, else the booking its metadata names (whatever its checkout)."""
    booking = repo.by_stripe_session(session, checkout.id)
    if booking is not None or not checkout.booking_ref:
        return booking
    try:
        return repo.get(session, uuid.UUID(checkout.booking_ref))
    except ValueError:
        return None


def payment_problem(booking: PrivateSession, checkout: gw.Checkout) -> Reason | None:
    """Why this checkout cannot pay for `booking`, or None when it can: it must be the booking's
    own checkout (or the booking has none yet) and charge exactly the booking's price."""
    if booking.stripe_session_id not in (None, checkout.id):
        return Reason.OTHER_CHECKOUT
    if (checkout.currency or "").lower() != booking.currency.lower():
        return Reason.CURRENCY_MISMATCH
    if checkout.amount_total != booking.price_amount:
        return Reason.AMOUNT_MISMATCH
    return None


def _own_booking(session: Session, booking: PrivateSession | None, checkout: gw.Checkout) -> PrivateSession | None:
    """`booking` if this checkout is its checkout; a booking with none adopts one at its price."""
    if booking is None or booking.stripe_session_id == checkout.id:
        return booking
    if payment_problem(booking, checkout) is not None:
        return None
    repo.set_fields(session, booking, stripe_session_id=checkout.id)
    return booking


def _booking_for_checkout(session: Session, checkout: gw.Checkout) -> PrivateSession | None:
    return _own_booking(session, _named_booking(session, checkout), checkout)


def fulfil(session: Session, *, checkout: gw.Checkout, actor: str, now: datetime) -> Outcome:
    """The one idempotent fulfilment: Pending + paid -> Confirmed; a late payment is confirmed
    if the slot is still free and ahead, otherwise refunded in full; a payment at another price
    or through another checkout than the booking's is refunded in full, the booking unchanged.
    Safe to call any number of times from the webhook, the success page and the jobs."""
    named = _named_booking(session, checkout)
    if named is not None and checkout.paid and (problem := payment_problem(named, checkout)) is not None:
        return _refuse_payment(session, booking=named, checkout=checkout, reason=problem, actor=actor, now=now)
    booking = _own_booking(session, named, checkout)
    if booking is None:
        return Outcome("unknown_booking")
    if not checkout.paid:
        return Outcome("awaiting_payment", booking)
    status = Status(booking.status)
    if status == Status.PENDING:
        change = lifecycle.confirm_payment(status, now=now, payment_intent_id=checkout.payment_intent)
        if not repo.apply(session, booking, change, actor=actor):
            return fulfil(session, checkout=checkout, actor=actor, now=now)
        return Outcome("confirmed", booking, Followups(links=[booking.id]))
    if status != Status.CANCELLED or booking.paid_at is not None:
        return Outcome("already_fulfilled", booking)
    return _late_payment(session, booking=booking, checkout=checkout, actor=actor, now=now)


def _refuse_payment(session, *, booking, checkout: gw.Checkout, reason: Reason, actor: str, now: datetime) -> Outcome:
    """Refund a payment that cannot pay for `booking` in full, once, and say why in its history;
    the booking keeps its status (and its own checkout, if it has one)."""
    repo.lock_teacher(session, booking.teacher_id)  # one refund however many paths see the payment
    session.refresh(booking)
    reason = payment_problem(booking, checkout) or reason
    if checkout.payment_intent and refunds.has_payment_refund(session, payment_intent=checkout.payment_intent):
        return Outcome("already_refunded", booking, refused=reason)
    if not checkout.payment_intent or not checkout.amount_total:
        return Outcome(reason.value, booking, refused=reason)  # nothing was charged, nothing changes
    change = lifecycle.refuse_payment(Status(booking.status), reason=reason, now=now)
    if not repo.apply(session, booking, change, actor=actor):
        return fulfil(session, checkout=checkout, actor=actor, now=now)
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
    return Outcome(reason.value, booking, Followups(refunds=[refund.id]), refused=reason)


def _late_payment(session, *, booking, checkout: gw.Checkout, actor: str, now: datetime) -> Outcome:
    # Lock first: Cancelled -> Cancelled cannot be a compare-and-set, so the teacher lock is
    # what stops two concurrent fulfils from both recording a refund.
    repo.lock_teacher(session, booking.teacher_id)
    session.refresh(booking)
    if booking.status != Status.CANCELLED or booking.paid_at is not None:
        return Outcome("already_fulfilled", booking)
    if refunds.has_late_payment_refund(session, booking_id=booking.id):
        return Outcome("already_refunded", booking)
    free = not repo.overlapping(
        session, teacher_id=booking.teacher_id, start=booking.starts_at, end=booking.ends_at, exclude=booking.id
    )
    status = Status(booking.status)
    if free and booking.starts_at > now:
        change = lifecycle.confirm_late_payment(
            status, now=now, payment_intent_id=checkout.payment_intent, was_paid=False
        )
        repo.apply(session, booking, change, actor=actor)
        return Outcome("late_payment_confirmed", booking, Followups(links=[booking.id]))
    change = lifecycle.refund_late_payment(status, now=now, payment_intent_id=checkout.payment_intent)
    repo.apply(session, booking, change, actor=actor)
    amount = checkout.amount_total if checkout.amount_total is not None else booking.price_amount
    refund = refunds.request(session, booking=booking, amount=amount, reason="late_payment", now=now)
    return Outcome("late_payment_refunded", booking, Followups(refunds=[refund.id]))


def cancel_unpaid(
    session: Session, *, booking_id: uuid.UUID, reason: Reason, actor: str, now: datetime
) -> PrivateSession:
    """Pending -> Cancelled; a no-op when already Cancelled; AlreadyPaid when paid meanwhile."""
    booking = repo.get(session, booking_id)
    while booking.status == Status.PENDING:
        change = lifecycle.cancel(Status.PENDING, reason=reason, now=now)
        if repo.apply(session, booking, change, actor=actor):
            return booking
    if booking.status in (Status.CONFIRMED, Status.COMPLETED):
        raise AlreadyPaid()
    return booking


def _own_booking_for_cancel(
    session: Session, *, parent: AuthUser, stripe_session_id: str | None, booking_id: uuid.UUID | None
) -> PrivateSession:
    booking = None
    if stripe_session_id and stripe_session_id != CHECKOUT_TEMPLATE:
        booking = repo.by_stripe_session(session, stripe_session_id)
    elif booking_id is not None:
        booking = repo.get(session, booking_id)
    if booking is None:
        raise BookingNotFound()
    if booking.parent_id != parent.id:
        raise Forbidden("This booking is not yours")
    return booking


async def withdraw_checkout(svc: Services, *, booking: PrivateSession, reason: Reason, actor: str) -> PrivateSession:
    """Expire the Checkout Session at Stripe first, then cancel; if Stripe says it was paid,
    fulfil instead and refuse with AlreadyPaid."""
    if booking.stripe_session_id:
        try:
            await svc.gateway.expire_checkout(booking.stripe_session_id, reason=reason.value)
        except gw.CheckoutNotOpen:
            checkout = await svc.gateway.retrieve_checkout(booking.stripe_session_id)
            if checkout.paid:
                await fulfil_and_follow_up(svc, checkout=checkout, actor=actor)
                raise AlreadyPaid() from None
        except gw.CheckoutNotFound:
            pass
        except gw.GatewayTimeout as exc:
            raise GatewayTimeout("The payment provider did not answer; try again in a moment") from exc
        except gw.GatewayError as exc:
            raise BadGateway("The payment provider could not be reached; try again in a moment") from exc
    return await svc.tx(cancel_unpaid, booking_id=booking.id, reason=reason, actor=actor, now=utc_now())


async def cancel_payment(
    svc: Services, *, parent: AuthUser, stripe_session_id: str | None, booking_id: uuid.UUID | None = None
) -> PrivateSession:
    """The cancel page's call: 404 unknown, 403 not yours, 400 paid, otherwise cancelled (again: no-op)."""
    booking = await svc.tx(
        _own_booking_for_cancel, parent=parent, stripe_session_id=stripe_session_id, booking_id=booking_id
    )
    if booking.status in (Status.CONFIRMED, Status.COMPLETED):
        raise AlreadyPaid()
    if booking.status == Status.CANCELLED:
        return booking
    return await withdraw_checkout(svc, booking=booking, reason=Reason.PAYMENT_CANCELLED, actor=parent.actor)


async def confirm_payment(svc: Services, *, parent: AuthUser, stripe_session_id: str) -> PrivateSession:
    """The success page's call: re-read the session from Stripe and fulfil if it is paid; a
    checkout not on record is looked up at Stripe and may name one of the parent's bookings.
    PaymentRefused (409) when the payment cannot pay for the booking (it is refunded)."""
    booking = await svc.tx(_own_booking_or_none, parent=parent, stripe_session_id=stripe_session_id)
    try:
        checkout = await svc.gateway.retrieve_checkout(stripe_session_id)
    except gw.CheckoutNotFound as exc:
        raise BookingNotFound() from exc
    except gw.GatewayError as exc:
        raise BadGateway("The payment provider could not be reached; try again in a moment") from exc
    if booking is None:
        booking = await svc.tx(_own_named_booking, parent=parent, checkout=checkout)
    outcome = await fulfil_and_follow_up(svc, checkout=checkout, actor=parent.actor)
    if outcome.refused is not None:
        raise PaymentRefused(outcome.refused)
    return outcome.booking or booking


def _own_booking_or_none(session: Session, *, parent: AuthUser, stripe_session_id: str) -> PrivateSession | None:
    booking = repo.by_stripe_session(session, stripe_session_id)
    if booking is not None and booking.parent_id != parent.id:
        raise Forbidden("This booking is not yours")
    return booking


def _own_named_booking(session: Session, *, parent: AuthUser, checkout: gw.Checkout) -> PrivateSession:
    booking = _named_booking(session, checkout)
    if booking is None:
        raise BookingNotFound()
    if booking.parent_id != parent.id:
        raise Forbidden("This booking is not yours")
    return booking


async def fulfil_and_follow_up(svc: Services, *, checkout: gw.Checkout, actor: str) -> Outcome:
    outcome = await svc.tx(fulfil, checkout=checkout, actor=actor, now=utc_now())
    await run_followups(svc, outcome.followups)
    if outcome.booking is not None:
        outcome.booking = await svc.tx(repo.get, booking_id=outcome.booking.id)
    return outcome


async def run_followups(svc: Services, followups: Followups) -> None:
    """Send refunds and make or delete meeting links, each in a worker thread, never raising."""
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(run_followups_sync, svc, followups)


def run_followups_sync(svc: Services, followups: Followups) -> None:
    from tutorbook.meetings import links

    for refund_id in followups.refunds:
        refunds.execute(svc, refund_id=refund_id)
    for booking_id in followups.links:
        links.ensure_link(svc, booking_id=booking_id, now=utc_now())
    for provider, external_id, url in followups.unlinks:
        links.remove_link(svc, provider=provider, external_id=external_id, url=url)


# -- after payment ---------------------------------------------------------------------


def _cancel_reason(user: AuthUser) -> Reason:
    return {
        Role.PARENT: Reason.PARENT_CANCELLED,
        Role.TEACHER: Reason.TEACHER_CANCELLED,
        Role.ADMIN: Reason.ADMIN_CANCELLED,
    }[Role(user.role)]


def refund_preview(booking: PrivateSession, *, reason: Reason, settings: Settings, now: datetime) -> int:
    """What a cancellation by `reason` would refund now."""
    return policy.refund_amount(
        reason=reason,
        price=booking.price_amount,
        already_refunded=booking.refunded_amount,
        starts_at=booking.starts_at,
        now=now,
        full_before_hours=settings.refund_full_before_hours,
        late_percent=settings.refund_late_percent,
    )


def cancel_confirmed(
    session: Session, *, user: AuthUser, booking_id: uuid.UUID, settings: Settings, now: datetime
) -> Outcome:
    """Confirmed -> Cancelled with the refund the policy gives, requested in the same transaction."""
    booking = get_for(session, user=user, booking_id=booking_id)
    if booking.status != Status.CONFIRMED:
        return Outcome("not_confirmed", booking)
    reason = _cancel_reason(user)
    amount = refund_preview(booking, reason=reason, settings=settings, now=now)
    change = lifecycle.cancel(Status.CONFIRMED, reason=reason, now=now)
    if not repo.apply(session, booking, change, actor=user.actor):
        return Outcome("not_confirmed", booking)
    followups = Followups(unlinks=[(booking.meeting_provider, booking.meeting_external_id, booking.meeting_url)])
    if amount > 0:
        refund = refunds.request(session, booking=booking, amount=amount, reason=reason.value, now=now)
        followups.refunds.append(refund.id)
    return Outcome("cancelled", booking, followups)


async def cancel_booking(svc: Services, *, user: AuthUser, booking_id: uuid.UUID) -> PrivateSession:
    """Cancel a booking: a Pending one withdraws its checkout; a Confirmed one is refunded per policy."""
    booking = await svc.tx(get_for, user=user, booking_id=booking_id)
    if booking.status == Status.PENDING:
        if user.role == Role.PARENT:
            return await cancel_payment(svc, parent=user, stripe_session_id=None, booking_id=booking.id)
        return await withdraw_checkout(svc, booking=booking, reason=_cancel_reason(user), actor=user.actor)
    if booking.status == Status.COMPLETED:
        raise BadRequest("A completed session cannot be cancelled")
    outcome = await svc.tx(cancel_confirmed, user=user, booking_id=booking_id, settings=svc.settings, now=utc_now())
    await run_followups(svc, outcome.followups)
    return await svc.tx(repo.get, booking_id=booking_id)


def complete(session: Session, *, user: AuthUser, booking_id: uuid.UUID, now: datetime) -> PrivateSession:
    """The teacher (or an admin) marks a Confirmed session completed once it has started."""
    booking = get_for(session, user=user, booking_id=booking_id)
    if user.role == Role.PARENT:
        raise Forbidden("Only the teacher or an admin can mark a session completed")
    if booking.status == Status.COMPLETED:
        return booking
    if booking.status != Status.CONFIRMED:
        raise BadRequest(f"A {Status(booking.status).label} booking cannot be completed")
    change = lifecycle.complete(
        Status.CONFIRMED, now=now, starts_at=booking.starts_at, ends_at=booking.ends_at, by_job=False
    )
    if not repo.apply(session, booking, change, actor=user.actor):
        raise Conflict("The booking changed meanwhile; reload and try again")
    return booking
