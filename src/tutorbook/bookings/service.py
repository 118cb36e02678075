"""Booking use cases: sync, one transaction each (the caller's `session`), taking `now`.

The async orchestration around them (Stripe, refunds sent, meeting links) is
`tutorbook.flows.booking`: Stripe is called between these transactions, never inside one."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tutorbook import currencies
from tutorbook.accounts import service as accounts
from tutorbook.bookings import lifecycle, policy, records, refunds
from tutorbook.bookings import repository as repo
from tutorbook.bookings.checkout import Checkout
from tutorbook.bookings.lifecycle import Move, NoReschedule, Reason, Status
from tutorbook.bookings.models import Booking, Refund
from tutorbook.bookings.policy import RefundChoice
from tutorbook.bookings.schemas import BookIn
from tutorbook.calendars import service as calendars
from tutorbook.config import CHECKOUT_MARGIN_MINUTES, Settings
from tutorbook.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from tutorbook.identity import AuthUser, Role
from tutorbook.notifications import service as notices
from tutorbook.teachers import payouts, slots
from tutorbook.teachers import service as teachers
from tutorbook.teachers.models import TeacherProfile, TimeOff
from tutorbook.teachers.policy import Terms
from tutorbook.validation import is_single_line

log = logging.getLogger("tutorbook.bookings")

CHECKOUT_TEMPLATE = "{CHECKOUT_SESSION_ID}"
# Stripe wants expires_at at least 30 minutes after creation; keep a margin for clock skew.
EXPIRY_MARGIN = timedelta(minutes=CHECKOUT_MARGIN_MINUTES)


class SlotTaken(Conflict):
    message = "This time is no longer free; choose another slot"


class AlreadyPaid(BadRequest):
    message = "Cannot cancel - payment already processed"


class BookingNotFound(NotFound):
    message = "Session not found"


class CalendarBusy(Conflict):
    message = "The teacher's calendar has just become busy at this time; choose another slot"


class TeacherNotPayable(Conflict):
    message = "This teacher cannot be booked until they have set up payouts"


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
    """Work to do after the commit: refunds to send to Stripe, meeting links to make, delete or
    move to a new time, destination charges whose split (transfer, application fee) to read from Stripe."""

    refunds: list[uuid.UUID] = field(default_factory=list)
    links: list[uuid.UUID] = field(default_factory=list)
    unlinks: list[tuple[str | None, str | None, str | None]] = field(default_factory=list)
    splits: list[uuid.UUID] = field(default_factory=list)
    moves: list[uuid.UUID] = field(default_factory=list)  # bookings whose meeting follows a new time

    def __bool__(self) -> bool:
        return bool(self.refunds or self.links or self.unlinks or self.splits or self.moves)

    def extend(self, other: Followups) -> None:
        self.refunds += other.refunds
        self.links += other.links
        self.unlinks += other.unlinks
        self.splits += other.splits
        self.moves += other.moves


@dataclass
class Outcome:
    """What a fulfilment or cancellation did (`kind`), to which booking, and what is left to do
    after the commit."""

    kind: str
    booking: Booking | None = None
    followups: Followups = field(default_factory=Followups)
    refused: Reason | None = None  # the payment could not pay for the booking and is refunded


@dataclass(frozen=True)
class Reservation:
    """A Pending booking holding its slot; `reused` when the same parent retried the same slot
    while their checkout was still open. The names come along for the answer."""

    booking: Booking
    reused: bool
    teacher_name: str
    student_name: str


def price_for(*, hourly_rate: int, minutes: int) -> int:
    """Minor units for `minutes` at `hourly_rate`, rounded half up."""
    return currencies.session_price(hourly_rate=hourly_rate, minutes=minutes)


# -- reading ---------------------------------------------------------------------------


def get_for(session: Session, *, user: AuthUser, booking_id: uuid.UUID) -> Booking:
    """A booking the caller may see: owner parent, its teacher, or an admin (403 otherwise)."""
    booking = repo.get(session, booking_id)
    if booking is None:
        raise BookingNotFound()
    if not may_see(user, booking):
        raise Forbidden("This booking is not yours")
    return booking


def must_get(session: Session, *, booking_id: uuid.UUID) -> Booking:
    """The booking (BookingNotFound otherwise), for callers that hold its id already."""
    booking = repo.get(session, booking_id)
    if booking is None:
        raise BookingNotFound()
    return booking


def may_see(user: AuthUser, booking: Booking) -> bool:
    return (
        user.role == Role.ADMIN
        or (user.role == Role.PARENT and booking.parent_id == user.id)
        or (user.role == Role.TEACHER and booking.teacher_id == user.id)
    )


# -- booking ---------------------------------------------------------------------------


def reserve(session: Session, *, parent: AuthUser, body: BookIn, settings: Settings, now: datetime) -> Reservation:
    """Validate and insert a Pending booking holding the slot. The names come along so booking
    takes two short transactions, not four."""
    student = accounts.own_student(session, parent_id=parent.id, student_id=body.student_id)
    # The profile, the teacher's name and (with the guard) the teacher's lock in one query.
    found = repo.teacher_for_booking(session, body.teacher_id, lock=settings.booking_guard)
    if found is None:
        raise NotFound("Teacher not found")
    profile, teacher_name = found
    start, end = body.starts_at, body.starts_at + timedelta(minutes=body.duration_minutes)
    _check_request(session, profile=profile, body=body, start=start, end=end, now=now)
    clashes = repo.overlapping(session, teacher_id=body.teacher_id, start=start, end=end)
    for other in clashes:
        if _same_open_checkout(other, parent=parent, body=body, start=start, end=end, now=now):
            # same teacher and, by _same_open_checkout, same student; answered with its records
            session.refresh(other, ["payment", "meeting", "terms_in_force"])
            return Reservation(other, True, teacher_name, student.full_name)
    if clashes:
        raise SlotTaken()
    destination = payouts.destination(session, teacher_id=body.teacher_id)
    if destination is None and settings.require_teacher_payouts:
        raise TeacherNotPayable()
    price = price_for(hourly_rate=profile.hourly_rate, minutes=body.duration_minutes)
    booking = Booking(
        id=uuid.uuid4(),
        parent_id=parent.id,
        student_id=body.student_id,
        teacher_id=body.teacher_id,
        subject=body.subject,
        starts_at=start,
        ends_at=end,
        price_amount=price,
        currency=profile.currency,
    )
    repo.insert(session, booking, lifecycle.book(now=now), actor=parent.actor)
    records.open_payment(
        session,
        booking,
        now=now,
        payout_destination=destination,
        platform_fee_amount=policy.platform_fee(amount=price, percent=settings.platform_fee_percent)
        if destination
        else None,
        checkout_expires_at=now + timedelta(minutes=settings.checkout_ttl_minutes) + EXPIRY_MARGIN,
    )
    if settings.mail_payment_nudge_minutes:
        # Goes out only if still Pending and unpaid by then (checked when sending).
        nudge = now + timedelta(minutes=settings.mail_payment_nudge_minutes)
        _notify(session, booking, ("payment_pending.parent",), now=now, not_before=nudge)
    return Reservation(booking, False, teacher_name, student.full_name)


def _notify(
    session: Session,
    booking: Booking,
    kinds: tuple[str, ...],
    *,
    now: datetime,
    payload: Mapping[str, object] | None = None,
    not_before: datetime | None = None,
) -> None:
    """Write the notices of a change in its transaction (the outbox): `kind.parent` goes to the
    parent, `kind.teacher` to the teacher; the version is the booking's history length."""
    who = {"parent": booking.parent_id, "teacher": booking.teacher_id}
    notices.booking_notice(
        session,
        booking_id=booking.id,
        recipients={kind: who[kind.rsplit(".", 1)[1]] for kind in kinds},
        version=repo.version(session, booking.id),
        payload=payload,
        now=now,
        not_before=not_before,
    )


def _chargeable(profile: TeacherProfile, *, minutes: int) -> list[dict[str, str]]:
    """Whether Stripe would take this price (a profile saved before the currency rules were
    enforced may break them): a supported currency, at least its minimum charge."""
    currency = currencies.get(profile.currency)
    if currency is None:
        return [{"field": "teacherId", "message": f"this teacher's currency ({profile.currency}) cannot be charged"}]
    price = price_for(hourly_rate=profile.hourly_rate, minutes=minutes)
    if price < currency.minimum:
        least = currency.text(currency.minimum)
        return [{"field": "durationMinutes", "message": f"{currency.text(price)} is under the minimum charge, {least}"}]
    return []


def _check_request(
    session: Session, *, profile: TeacherProfile, body: BookIn, start: datetime, end: datetime, now: datetime
) -> None:
    problems: list[dict[str, str]] = []
    if profile.subjects and body.subject.lower() not in {s.lower() for s in profile.subjects}:
        problems.append({"field": "subject", "message": "this teacher does not teach it"})
    if profile.hourly_rate <= 0:
        problems.append({"field": "teacherId", "message": "this teacher has no price yet"})
    else:
        problems += _chargeable(profile, minutes=body.duration_minutes)
    if not profile.listed:
        problems.append({"field": "teacherId", "message": "this teacher is not taking bookings"})
    problems += start_problems(start, now=now)
    if problems:
        raise Unprocessable("This booking cannot be made", data=problems)
    check_offered(session, profile=profile, start=start, end=end)


def check_offered(session: Session, *, profile: TeacherProfile, start: datetime, end: datetime) -> None:
    """422 unless the teacher offers [start, end): inside their weekly hours and clear of their
    time off; 409 if one of their calendars is busy then (the check booking and rescheduling share;
    overlaps with other bookings are checked apart, under the lock)."""
    if not offered(session, profile=profile, start=start, end=end):
        raise Unprocessable(
            "This time is outside the teacher's availability",
            data=[{"field": "startsAt", "message": "outside availability"}],
        )
    if teachers.is_time_off(session, profile.user_id, start=start, end=end):
        raise Unprocessable(
            "The teacher is away at this time", data=[{"field": "startsAt", "message": "during time off"}]
        )
    # Checked again here, not only when the times were shown: a sync may have brought it since.
    if calendars.is_busy(session, profile.user_id, start=start, end=end):
        raise CalendarBusy()


def offered(session: Session, *, profile: TeacherProfile, start: datetime, end: datetime) -> bool:
    """Whether the teacher offers [start, end) at all (their weekly hours), busy or not: the one
    check booking and rescheduling share; the overlap with other bookings is checked apart,
    under the teacher's lock."""
    return slots.within_windows(
        teachers.windows(session, profile.user_id), zone=profile.time_zone, start=start, end=end
    )


def _same_open_checkout(
    other: Booking, *, parent: AuthUser, body: BookIn, start: datetime, end: datetime, now: datetime
) -> bool:
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


def attach_checkout(session: Session, *, booking: Booking, checkout: Checkout) -> Booking:
    """Store the Checkout Session's id, URL and expiry on the booking's payment, and read the
    booking back (a payment may have been seen meanwhile): two statements, each atomic alone (an
    UPDATE ... RETURNING, then the booking's row), so they may run without a transaction."""
    fields: dict[str, Any] = {"stripe_checkout_id": checkout.id, "checkout_url": checkout.url}
    if checkout.expires_at is not None:
        fields["checkout_expires_at"] = checkout.expires_at
    if not repo.attach_to_payment(session, booking, **fields):
        raise BookingNotFound()
    return booking


def checkout_urls(*, public_url: str, booking_id: uuid.UUID) -> tuple[str, str]:
    """success_url and cancel_url exactly as the frontend expects them."""
    base = public_url.rstrip("/")
    success = f"{base}/payment/success?session_id={CHECKOUT_TEMPLATE}&type=session-booking"
    cancel = f"{base}/payment/cancel?session_id={CHECKOUT_TEMPLATE}&type=session-booking&booking_id={booking_id}"
    return success, cancel


# -- payment ---------------------------------------------------------------------------


def _named_booking(session: Session, checkout: Checkout) -> Booking | None:
    """The booking whose checkout this is, else the booking its metadata names (whatever its checkout)."""
    booking = repo.by_stripe_session(session, checkout.id)
    if booking is not None or not checkout.booking_ref:
        return booking
    try:
        return repo.get(session, uuid.UUID(checkout.booking_ref))
    except ValueError:
        return None


def payment_problem(booking: Booking, checkout: Checkout) -> Reason | None:
    """Why this checkout cannot pay for `booking`, or None when it can: it must be the checkout
    the booking itself created (its recorded id) and charge exactly the booking's price. A booking
    with no recorded checkout (its creation failed) adopts none: anyone holding the Stripe key
    can make a checkout that names it, and the teacher's share would then stay with the platform."""
    if booking.stripe_session_id not in (None, checkout.id):
        return Reason.OTHER_CHECKOUT
    if (checkout.currency or "").lower() != booking.currency.lower():
        return Reason.CURRENCY_MISMATCH
    if checkout.amount_total != booking.price_amount:
        return Reason.AMOUNT_MISMATCH
    if booking.stripe_session_id != checkout.id:  # none recorded; a price mismatch says more, above
        return Reason.OTHER_CHECKOUT
    return None


def _own_booking(booking: Booking | None, checkout: Checkout) -> Booking | None:
    """`booking` if this checkout is the one it created (its recorded id)."""
    if booking is None or booking.stripe_session_id == checkout.id:
        return booking
    return None


def booking_for_checkout(session: Session, checkout: Checkout) -> Booking | None:
    """The booking this checkout is the checkout of (the id it recorded when it created it)."""
    return _own_booking(_named_booking(session, checkout), checkout)


def fulfil(session: Session, *, checkout: Checkout, actor: str, platform: Terms, now: datetime) -> Outcome:
    """The one idempotent fulfilment: Pending + paid -> Confirmed; a late payment is confirmed
    if the slot is still free and ahead, otherwise refunded in full; a payment at another price
    or through another checkout than the booking's is refunded in full, the booking unchanged.
    Safe to call any number of times from the webhook, the success page and the jobs. A booking
    confirmed keeps the teacher's terms in force now (`platform`: for a teacher who set none)."""
    named = _named_booking(session, checkout)
    if named is not None and checkout.paid and (problem := payment_problem(named, checkout)) is not None:
        return _refuse_payment(
            session, booking=named, checkout=checkout, reason=problem, actor=actor, platform=platform, now=now
        )
    booking = _own_booking(named, checkout)
    if booking is None:
        return Outcome("unknown_booking")
    if not checkout.paid:
        return Outcome("awaiting_payment", booking)
    status = Status(booking.status)
    if status == Status.PENDING:
        change = lifecycle.confirm_payment(
            status, now=now, payment_intent_id=checkout.payment_intent, terms=_terms_now(session, booking, platform)
        )
        if not repo.apply(session, booking, change, actor=actor):
            return fulfil(session, checkout=checkout, actor=actor, platform=platform, now=now)
        _notify(session, booking, ("confirmed.parent", "confirmed.teacher"), now=now)
        return Outcome("confirmed", booking, _paid_followups(booking))
    if status != Status.CANCELLED or booking.paid_at is not None:
        return Outcome("already_fulfilled", booking)
    return _late_payment(session, booking=booking, checkout=checkout, actor=actor, platform=platform, now=now)


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
        return Outcome("already_refunded", booking, refused=reason)
    if not checkout.payment_intent or not checkout.amount_total:
        return Outcome(reason.value, booking, refused=reason)  # nothing was charged, nothing changes
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
        return Outcome("already_refunded", booking, refused=reason)
    return Outcome(reason.value, booking, Followups(refunds=[refund.id]), refused=reason)


def _late_payment(
    session: Session, *, booking: Booking, checkout: Checkout, actor: str, platform: Terms, now: datetime
) -> Outcome:
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
            status,
            now=now,
            payment_intent_id=checkout.payment_intent,
            was_paid=False,
            terms=_terms_now(session, booking, platform),
        )
        repo.apply(session, booking, change, actor=actor)
        _notify(session, booking, ("confirmed.parent", "confirmed.teacher"), now=now)
        return Outcome("late_payment_confirmed", booking, _paid_followups(booking))
    change = lifecycle.refund_late_payment(status, now=now, payment_intent_id=checkout.payment_intent)
    repo.apply(session, booking, change, actor=actor)
    amount = checkout.amount_total if checkout.amount_total is not None else booking.price_amount
    refund = refunds.request(session, booking=booking, amount=amount, reason="late_payment", now=now)
    _notify(session, booking, ("late_payment_refunded.parent",), now=now, payload={"refund": amount})
    return Outcome("late_payment_refunded", booking, Followups(refunds=[refund.id]))


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


def own_booking(
    session: Session, *, parent: AuthUser, stripe_session_id: str | None, booking_id: uuid.UUID | None
) -> Booking:
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


# -- after payment ---------------------------------------------------------------------


def own_booking_or_none(session: Session, *, parent: AuthUser, stripe_session_id: str) -> Booking | None:
    """The parent's booking with this checkout; None when no booking has it (403 if not theirs)."""
    booking = repo.by_stripe_session(session, stripe_session_id)
    if booking is not None and booking.parent_id != parent.id:
        raise Forbidden("This booking is not yours")
    return booking


def own_named_booking(session: Session, *, parent: AuthUser, checkout: Checkout) -> Booking:
    """The parent's booking that a checkout not on record names in its metadata (404, 403)."""
    booking = _named_booking(session, checkout)
    if booking is None:
        raise BookingNotFound()
    if booking.parent_id != parent.id:
        raise Forbidden("This booking is not yours")
    return booking


def cancel_reason(user: AuthUser) -> Reason:
    return {
        Role.PARENT: Reason.PARENT_CANCELLED,
        Role.TEACHER: Reason.TEACHER_CANCELLED,
        Role.ADMIN: Reason.ADMIN_CANCELLED,
    }[Role(user.role)]


def terms_of(booking: Booking, *, settings: Settings) -> Terms:
    """The terms stored on the booking when it was paid (the platform's before that)."""
    return policy.stored(booking, platform=Terms.platform(settings))


def refund_preview(booking: Booking, *, reason: Reason, settings: Settings, now: datetime) -> int:
    """What a cancellation by `reason` would refund now, under the booking's stored terms."""
    terms = terms_of(booking, settings=settings)
    return policy.refund_amount(
        reason=reason,
        price=booking.price_amount,
        already_refunded=booking.refunded_amount,
        starts_at=booking.starts_at,
        now=now,
        full_before_hours=terms.full_refund_hours,
        late_percent=terms.late_refund_percent,
    )


def cancel_confirmed(
    session: Session,
    *,
    user: AuthUser,
    booking_id: uuid.UUID,
    settings: Settings,
    now: datetime,
    note: str | None = None,
) -> Outcome:
    """Confirmed -> Cancelled with the refund the policy gives, requested in the same transaction.
    `note`: an optional word to the other side (a teacher's reason), kept in the history and
    shown in the cancellation notice."""
    note = optional_note(note)
    booking = get_for(session, user=user, booking_id=booking_id)
    if booking.status != Status.CONFIRMED:
        return Outcome("not_confirmed", booking)
    reason = cancel_reason(user)
    amount = refund_preview(booking, reason=reason, settings=settings, now=now)
    change = lifecycle.cancel(Status.CONFIRMED, reason=reason, now=now)
    if not repo.apply(session, booking, change, actor=user.actor, note=note):
        return Outcome("not_confirmed", booking)
    followups = Followups(unlinks=[(booking.meeting_provider, booking.meeting_external_id, booking.meeting_url)])
    if amount > 0:
        refund = refunds.request(session, booking=booking, amount=amount, reason=reason.value, now=now)
        followups.refunds.append(refund.id)
    payload: dict[str, Any] = {"refund": amount, "reason": reason.value, "by": user.role}
    if note:
        payload["note"] = note
    _notify(session, booking, ("cancelled.parent", "cancelled.teacher"), now=now, payload=payload)
    return Outcome("cancelled", booking, followups)


NOTE_MAX = 500


def check_note(note: str | None) -> str:
    """An admin's reason: required, one paragraph of at most NOTE_MAX characters (422 otherwise)."""
    text = " ".join((note or "").split())
    problem = None
    if not text:
        problem = "say why (it is kept in the booking's history)"
    elif len(text) > NOTE_MAX:
        problem = f"at most {NOTE_MAX} characters"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        problem = "no control characters"
    if problem:
        raise Unprocessable("A reason is needed", data=[{"field": "reason", "message": problem}])
    return text


def record_admin_action(
    session: Session,
    *,
    booking_id: uuid.UUID,
    action: str,
    actor: str,
    note: str | None,
    detail: str | None,
    now: datetime,
) -> None:
    """An admin's action on a booking, for its history on the console."""
    must_get(session, booking_id=booking_id)
    repo.record_action(session, booking_id, action=action, actor=actor, note=note, detail=detail, at=now)


def admin_refund(booking: Booking, *, choice: RefundChoice, settings: Settings, now: datetime) -> int:
    """What an admin's cancellation refunds: all that is left, the parent's policy now, or nothing."""
    choice = RefundChoice(choice)
    if choice == RefundChoice.NONE:
        return 0
    if choice == RefundChoice.POLICY:
        return refund_preview(booking, reason=Reason.PARENT_CANCELLED, settings=settings, now=now)
    return max(booking.price_amount - booking.refunded_amount, 0)


def cancel_as_admin(
    session: Session,
    *,
    admin: AuthUser,
    booking_id: uuid.UUID,
    refund: RefundChoice,
    note: str,
    settings: Settings,
    now: datetime,
) -> Outcome:
    """Confirmed -> Cancelled by an admin, with the refund they chose and their reason, in one
    transaction: the status history row (actor: the admin, note: the reason), the refund to
    send, an admin action naming the choice and the amount, and both sides' notices."""
    if admin.role != Role.ADMIN:
        raise Forbidden("Only an admin chooses the refund")
    note = check_note(note)
    booking = must_get(session, booking_id=booking_id)
    if booking.status != Status.CONFIRMED:
        return Outcome("not_confirmed", booking)
    amount = admin_refund(booking, choice=refund, settings=settings, now=now)
    change = lifecycle.cancel(Status.CONFIRMED, reason=Reason.ADMIN_CANCELLED, now=now)
    if not repo.apply(session, booking, change, actor=admin.actor, note=note):
        return Outcome("not_confirmed", booking)
    followups = Followups(unlinks=[(booking.meeting_provider, booking.meeting_external_id, booking.meeting_url)])
    if amount > 0:
        row = refunds.request(session, booking=booking, amount=amount, reason=Reason.ADMIN_CANCELLED.value, now=now)
        followups.refunds.append(row.id)
    detail = f"refund: {RefundChoice(refund).value} ({amount} {booking.currency})"
    repo.record_action(session, booking.id, action="cancel", actor=admin.actor, note=note, detail=detail, at=now)
    # Both sides are told as for any cancellation (the email and its calendar CANCEL).
    payload = {"refund": amount, "reason": Reason.ADMIN_CANCELLED.value, "by": str(admin.role)}
    _notify(session, booking, ("cancelled.parent", "cancelled.teacher"), now=now, payload=payload)
    return Outcome("cancelled", booking, followups)


ADMIN_REFUND = "admin_refund"  # a refund's reason: an operator gave money back, the booking kept
_ADMIN_REFUNDS = uuid.UUID("0b7f3c36-2f55-4c55-9d8e-5a4f4a3e7c21")  # uuid5 namespace: refund id per form key


def refundable(session: Session, *, booking: Booking) -> int:
    """What is left to give back of the booking's payment (asked-for refunds count)."""
    if booking.stripe_payment_intent_id is None or booking.paid_at is None:
        return 0
    return max(booking.price_amount - refunds.promised(session, booking=booking), 0)


def refund_as_admin(
    session: Session,
    *,
    admin: AuthUser,
    booking_id: uuid.UUID,
    amount: int,
    note: str,
    key: str,
    now: datetime,
) -> Outcome:
    """An admin gives back `amount` (minor units) of a paid booking without cancelling it, with
    a reason, in one transaction: the refund to send (through the refund outbox, so Stripe gets
    it after the commit and reconcile re-sends it if that fails) and an admin action. At most what
    is left (422 otherwise). `key` is the form's one-time key: the same key asks once (a
    resubmitted form or a double click refunds once). kind: "refunded", or "repeated" for a key
    already used."""
    if admin.role != Role.ADMIN:
        raise Forbidden("Only an admin refunds without cancelling")
    note = check_note(note)
    if not key or not is_single_line(key, max_length=100):
        raise Unprocessable("This form has no key; reload the page", data=[{"field": "key", "message": "missing"}])
    booking = must_get(session, booking_id=booking_id)
    repo.lock_teacher(session, booking.teacher_id)  # two admins at once cannot both give back the rest
    session.refresh(booking)
    refund_id = uuid.uuid5(_ADMIN_REFUNDS, f"{booking.id}:{key}")
    if session.get(Refund, refund_id) is not None:
        return Outcome("repeated", booking)
    if booking.status not in (Status.CONFIRMED, Status.COMPLETED) or booking.stripe_payment_intent_id is None:
        raise Conflict(f"A {Status(booking.status).label} booking has no payment to refund here")
    left = refundable(session, booking=booking)
    if amount <= 0 or amount > left:
        raise Unprocessable(
            "Refund an amount from 0.01 up to what is left",
            data=[{"field": "amount", "message": f"more than 0 and at most {left} (minor units)", "left": left}],
        )
    refund, _ = refunds.request_once(
        session, booking=booking, refund_id=refund_id, amount=amount, reason=ADMIN_REFUND, now=now
    )
    detail = f"refund: {amount} {booking.currency} without cancelling ({left - amount} left)"
    repo.record_action(session, booking.id, action="refund", actor=admin.actor, note=note, detail=detail, at=now)
    return Outcome("refunded", booking, Followups(refunds=[refund.id]))


RESEND_TO: dict[str, tuple[str, ...]] = {
    "parent": ("confirmed.parent",),
    "teacher": ("confirmed.teacher",),
    "both": ("confirmed.parent", "confirmed.teacher"),
}


def optional_note(note: str | None) -> str | None:
    """An admin's optional remark: None when blank, else check_note's rules."""
    return check_note(note) if note and note.strip() else None


def resend_confirmation(
    session: Session,
    *,
    admin: AuthUser,
    booking_id: uuid.UUID,
    to: str,
    note: str | None,
    now: datetime,
) -> int:
    """The confirmation email (with its invite) written to the outbox again for the parent, the
    teacher or both, and an admin action naming who it went to, in one transaction. Only a
    Confirmed booking has a confirmation to resend (409 otherwise). How many were written."""
    if admin.role != Role.ADMIN:
        raise Forbidden("Only an admin resends a confirmation")
    kinds = RESEND_TO.get(to)
    if kinds is None:
        raise Unprocessable("Choose who gets it", data=[{"field": "to", "message": "parent, teacher or both"}])
    remark = optional_note(note)
    booking = must_get(session, booking_id=booking_id)
    if booking.status != Status.CONFIRMED:
        raise Conflict(f"A {Status(booking.status).label} booking has no confirmation to resend")
    who = {"parent": booking.parent_id, "teacher": booking.teacher_id}
    recipients = {kind: who[kind.rsplit(".", 1)[1]] for kind in kinds}
    written = notices.resend(
        session, booking_id=booking.id, recipients=recipients, sequence=repo.version(session, booking.id), now=now
    )
    addresses = ", ".join(
        f"{kind.rsplit('.', 1)[1]} {accounts.get_user(session, user_id).email}" for kind, user_id in recipients.items()
    )
    detail = f"to {addresses}"
    repo.record_action(
        session, booking.id, action="resend_confirmation", actor=admin.actor, note=remark, detail=detail, at=now
    )
    return written


def complete(session: Session, *, user: AuthUser, booking_id: uuid.UUID, now: datetime) -> Booking:
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


# -- reschedule ------------------------------------------------------------------------


@dataclass
class Moved:
    """What a reschedule did: `kind` is "rescheduled" or "unchanged" (already at that time);
    the meeting to move after the commit is in `followups.moves`."""

    kind: str
    booking: Booking
    from_start: datetime | None = None
    followups: Followups = field(default_factory=Followups)


def why_not_reschedule(
    booking: Booking, *, user: AuthUser, settings: Settings, now: datetime
) -> NoReschedule | None:
    """Why `user` cannot change this booking's time now (the pages hide the button and say
    why), or None when they can."""
    terms = terms_of(booking, settings=settings)
    return lifecycle.why_not_reschedule(
        Status(booking.status),
        role=Role(user.role),
        now=now,
        starts_at=booking.starts_at,
        count=booking.reschedule_count,
        deadline_hours=terms.reschedule_deadline_hours,
        max_reschedules=terms.max_reschedules,
    )


def start_problems(start: datetime, *, now: datetime) -> list[dict[str, str]]:
    """What is wrong with `start` as a session's start (booked or moved to): in the future, at
    most a year ahead, on a whole 5-minute mark."""
    problems = []
    if start <= now:
        problems.append({"field": "startsAt", "message": "must be in the future"})
    elif start > now + timedelta(days=366):
        problems.append({"field": "startsAt", "message": "at most a year ahead"})
    if start.second or start.microsecond or start.minute % 5:
        problems.append({"field": "startsAt", "message": "start on a whole 5-minute mark"})
    return problems


def _check_new_start(start: datetime, *, now: datetime) -> None:
    if problems := start_problems(start, now=now):
        raise Unprocessable("The session cannot be moved to this time", data=problems)


def reschedule(
    session: Session, *, user: AuthUser, booking_id: uuid.UUID, starts_at: datetime, settings: Settings, now: datetime
) -> Moved:
    """Move a Confirmed booking to `starts_at`, same teacher, length, price and payment: under
    the teacher's lock, the lifecycle's rules (from the booking's stored terms), the teacher's
    hours and no overlap, one compare-and-set with its history row, and both sides' notices."""
    booking = get_for(session, user=user, booking_id=booking_id)
    _check_new_start(starts_at, now=now)
    found = repo.teacher_for_booking(session, booking.teacher_id, lock=settings.booking_guard)
    if found is None:
        raise NotFound("Teacher not found")
    profile = found[0]
    session.refresh(booking)  # as it is now that the teacher's bookings are ours to change
    if booking.status == Status.CONFIRMED and booking.starts_at == starts_at:
        return Moved("unchanged", booking)
    terms = terms_of(booking, settings=settings)
    move: Move = lifecycle.reschedule(
        Status(booking.status),
        role=Role(user.role),
        now=now,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        new_start=starts_at,
        count=booking.reschedule_count,
        deadline_hours=terms.reschedule_deadline_hours,
        max_reschedules=terms.max_reschedules,
    )
    check_offered(session, profile=profile, start=move.to_start, end=move.to_end)
    if repo.overlapping(
        session, teacher_id=booking.teacher_id, start=move.to_start, end=move.to_end, exclude=booking.id
    ):
        raise SlotTaken()
    if not repo.move(session, booking, move, actor=user.actor):
        raise Conflict("The booking changed meanwhile; reload and try again")
    # Moves in quick succession are told once, of the last one (and from where it was before the first).
    notices.change_notice(
        session,
        booking_id=booking.id,
        recipients={"rescheduled.parent": booking.parent_id, "rescheduled.teacher": booking.teacher_id},
        version=repo.version(session, booking.id),
        payload={"from": move.from_start.isoformat(), "by": str(user.role)},
        window=timedelta(seconds=settings.mail_change_window_seconds),
        now=now,
    )
    followups = Followups(moves=[booking.id]) if booking.meeting_url else Followups()
    return Moved("rescheduled", booking, move.from_start, followups)


# -- reminders -------------------------------------------------------------------------

REMINDER_HOURS = (24, 1)
# A reminder's version: its hours, plus this for every time the session was moved, so a session
# moved after its 24 h reminder went out gets one for its new time (version 124, 224, ...).
REMINDER_VERSION_PER_MOVE = 100


def remind(session: Session, *, now: datetime, start: datetime, limit: int) -> tuple[int, list[Booking]]:
    """Write the due reminders of Confirmed sessions starting in [start, now + 24 h), at most
    `limit` sessions: the 1 h reminder in the last hour, the 24 h one before that. A session
    paid after a reminder's moment gets no such reminder (the confirmation was enough). Once
    per (booking, hours, start time): a session moved to a new time is reminded of that time
    again. Returns (reminders written, sessions seen)."""
    batch = repo.starting_between(session, start=max(start, now), end=now + timedelta(hours=24), limit=limit)
    added = 0
    for booking in batch:
        hours = 1 if booking.starts_at - now <= timedelta(hours=1) else 24
        moment = booking.starts_at - timedelta(hours=hours)
        if booking.paid_at is None or booking.paid_at > moment:
            continue
        added += notices.booking_notice(
            session,
            booking_id=booking.id,
            recipients={"reminder.parent": booking.parent_id, "reminder.teacher": booking.teacher_id},
            version=hours + REMINDER_VERSION_PER_MOVE * booking.reschedule_count,
            now=now,
        )
    return added, batch


# -- around bookings -------------------------------------------------------------------


def unpaid_holds(session: Session, *, parent_id: uuid.UUID, now: datetime) -> list[dict[str, Any]]:
    """The parent's Pending bookings whose checkout is open: each holds a slot until paid or
    cancelled (the pages' banner: resume payment or cancel)."""
    out = []
    for booking in repo.open_checkouts(session, parent_id=parent_id, now=now):
        teacher_name, student_name = repo.names_for(session, booking)
        out.append(
            {
                "id": booking.id,
                "subject": booking.subject,
                "teacher_name": teacher_name,
                "student_name": student_name,
                "starts_at": booking.starts_at,
                "ends_at": booking.ends_at,
                "checkout_url": booking.checkout_url,
                "checkout_expires_at": booking.checkout_expires_at,
            }
        )
    return out


def free_slots(
    session: Session,
    *,
    teacher_id: uuid.UUID,
    start: datetime,
    end: datetime,
    now: datetime,
    exclude: uuid.UUID | None = None,
) -> list[slots.Interval]:
    """A teacher's free intervals: the weekly windows minus time off and Pending/Confirmed bookings
    (but booking `exclude`, the one being moved: its own time is free to it)."""
    teachers.check_range(start, end)
    return _free(session, teacher_id=teacher_id, start=start, end=end, now=now, exclude=exclude)


def _free(
    session: Session,
    *,
    teacher_id: uuid.UUID,
    start: datetime,
    end: datetime,
    now: datetime,
    exclude: uuid.UUID | None = None,
) -> list[slots.Interval]:
    profile = teachers.get_profile(session, teacher_id)
    busy = repo.busy_intervals(session, teacher_id=teacher_id, start=start, end=end, exclude=exclude)
    busy += teachers.time_off_intervals(session, teacher_id, start=start, end=end)
    busy += calendars.busy_intervals(session, teacher_id, start=start, end=end)
    return slots.free_intervals(
        teachers.windows(session, teacher_id), zone=profile.time_zone, start=start, end=end, busy=busy, now=now
    )


def bookable_starts(
    session: Session, *, teacher_id: uuid.UUID, start: datetime, end: datetime, minutes: int, now: datetime
) -> list[datetime]:
    """Start times in [start, end) where a session of `minutes` fits whole: inside the hours,
    outside time off, clear of every holding booking, and ahead of `now` (booking refuses the rest)."""
    teachers.check_range(start, end)
    duration = timedelta(minutes=minutes)
    # Look past `end` by one session, so a start near the end is judged on the time after it.
    free = _free(session, teacher_id=teacher_id, start=start, end=end + duration, now=now)
    return [t for t in slots.start_times(free, duration=duration) if t < end and t > now]


# -- time off --------------------------------------------------------------------------


def affected_sessions(
    session: Session, *, teacher_id: uuid.UUID, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Confirmed sessions of the teacher inside [start, end): kept, listed for the teacher to act on."""
    rows = repo.schedule_with_parents(session, teacher_id=teacher_id, start=start, end=end)
    return [_affected(b, student, parent, email) for b, student, parent, email in rows if b.status == Status.CONFIRMED]


def _affected(b: Booking, student: str, parent: str, email: str) -> dict[str, Any]:
    return {
        "id": b.id,
        "subject": b.subject,
        "starts_at": b.starts_at,
        "ends_at": b.ends_at,
        "student_name": student,
        "parent_name": parent,
        "parent_email": email,
    }


def time_off_with_sessions(session: Session, *, teacher_id: uuid.UUID, now: datetime) -> list[dict[str, Any]]:
    """The teacher's time off that is not over yet, each with the paid sessions inside it: two
    queries however many ranges there are (the ranges, then every session inside any of them)."""
    ranges = teachers.time_off(session, teacher_id, start=now)
    inside: dict[uuid.UUID, list[dict[str, Any]]] = {row.id: [] for row in ranges}
    for time_off_id, b, student, parent, email in repo.paid_sessions_in_time_off(
        session, teacher_id=teacher_id, time_off_ids=list(inside)
    ):
        if b.status == Status.CONFIRMED:
            inside[time_off_id].append(_affected(b, student, parent, email))
    return [_time_off_view(row, inside[row.id]) for row in ranges]


def add_time_off(
    session: Session, *, teacher_id: uuid.UUID, starts_at: datetime, ends_at: datetime, note: str, now: datetime
) -> dict[str, Any]:
    """New time off; the paid sessions inside it are listed (never dropped)."""
    row = teachers.add_time_off(
        session, teacher_id=teacher_id, starts_at=starts_at, ends_at=ends_at, note=note, now=now
    )
    return _time_off_view(
        row, affected_sessions(session, teacher_id=row.teacher_id, start=row.starts_at, end=row.ends_at)
    )


def _time_off_view(row: TimeOff, affected: list[dict[str, Any]]) -> dict[str, Any]:
    view = {"id": row.id, "starts_at": row.starts_at, "ends_at": row.ends_at, "note": row.note}
    return {**view, "affected_sessions": affected}


def delete_student(session: Session, *, parent_id: uuid.UUID, student_id: uuid.UUID) -> None:
    """Remove a child; refused while bookings reference them (history is kept)."""
    student = accounts.own_student(session, parent_id=parent_id, student_id=student_id)
    if repo.student_has_bookings(session, student_id=student.id):
        raise Conflict("This child has bookings; they are kept for the record")
    session.delete(student)
