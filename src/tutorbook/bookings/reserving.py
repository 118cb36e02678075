"""Booking a slot: the checks, the price, the Pending booking holding it and its checkout.

Sync, one transaction each (the caller's `session`), taking `now`; the async orchestration
around them (Stripe) is `tutorbook.flows.booking`: Stripe is called between these transactions,
never inside one."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session

from tutorbook import currencies
from tutorbook.accounts import service as accounts
from tutorbook.bookings import lifecycle, outbox, policy, records
from tutorbook.bookings import repository as repo
from tutorbook.bookings.checkout import CHECKOUT_TEMPLATE, Checkout
from tutorbook.bookings.errors import BookingNotFound, CalendarBusy, SlotTaken, TeacherNotPayable
from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.models import Booking
from tutorbook.bookings.outcomes import Reservation
from tutorbook.bookings.payment_states import PaymentKind
from tutorbook.bookings.schemas import BookIn
from tutorbook.calendars import service as calendars
from tutorbook.config import CHECKOUT_MARGIN_MINUTES, Settings
from tutorbook.errors import NotFound, Unprocessable
from tutorbook.identity import AuthUser
from tutorbook.teachers import payouts, slots
from tutorbook.teachers import service as teachers
from tutorbook.teachers.models import TeacherProfile
from tutorbook.teachers.policy import Terms

# Stripe wants expires_at at least 30 minutes after creation; keep a margin for clock skew.
EXPIRY_MARGIN = timedelta(minutes=CHECKOUT_MARGIN_MINUTES)


def price_for(*, hourly_rate: int, minutes: int) -> int:
    """Minor units for `minutes` at `hourly_rate`, rounded half up."""
    return currencies.session_price(hourly_rate=hourly_rate, minutes=minutes)


def reserve(session: Session, *, parent: AuthUser, body: BookIn, settings: Settings, now: datetime) -> Reservation:
    """Validate and insert a Pending booking holding the slot. The names come along so booking
    takes two short transactions, not four."""
    # The profile, the teacher's name, (with the guard) the teacher's lock and the student in one query.
    profile, teacher_name, _, student_name = parties(session, parent=parent, body=body, settings=settings)
    start, end = body.starts_at, body.starts_at + timedelta(minutes=body.duration_minutes)
    taken = check_slot(session, profile=profile, body=body, start=start, end=end, now=now).clash
    clashes = repo.overlapping(session, teacher_id=body.teacher_id, start=start, end=end) if taken else []
    for other in clashes:
        if _same_open_checkout(other, parent=parent, body=body, start=start, end=end, now=now):
            # same teacher and, by _same_open_checkout, same student; answered with its records
            session.refresh(other, ["payment", "meeting", "terms_in_force"])
            return Reservation(other, True, teacher_name, student_name)
    if clashes:
        raise SlotTaken()
    destination = payouts.destination(session, teacher_id=body.teacher_id)
    if destination is None and settings.require_teacher_payouts:
        raise TeacherNotPayable()
    booking = hold(
        session,
        parent=parent,
        body=body,
        profile=profile,
        destination=destination,
        settings=settings,
        now=now,
        checkout_expires_at=now + timedelta(minutes=settings.checkout_ttl_minutes) + EXPIRY_MARGIN,
    )
    if settings.mail_payment_nudge_minutes:
        # Goes out only if still Pending and unpaid by then (checked when sending).
        nudge = now + timedelta(minutes=settings.mail_payment_nudge_minutes)
        outbox.notify(session, booking, ("payment_pending.parent",), now=now, not_before=nudge)
    return Reservation(booking, False, teacher_name, student_name)


def parties(
    session: Session, *, parent: AuthUser, body: BookIn, settings: Settings
) -> tuple[TeacherProfile, str, str, str]:
    """The teacher's profile, name and email (with the guard, the teacher locked) and the
    student's name, in one statement; refused as before they were two: the student's 404 / 403
    (`accounts.own_student`) first, then "Teacher not found"."""
    found = repo.teacher_and_student(session, body.teacher_id, body.student_id, lock=settings.booking_guard)
    if found is not None and found[3] == parent.id and found[4] is not None:
        return found[0], found[1], found[2], found[4]
    student = accounts.own_student(session, parent_id=parent.id, student_id=body.student_id)  # its refusal
    if found is None:
        raise NotFound("Teacher not found")
    return found[0], found[1], found[2], student.full_name


def hold(
    session: Session,
    *,
    parent: AuthUser,
    body: BookIn,
    profile: TeacherProfile,
    destination: str | None,
    settings: Settings,
    now: datetime,
    checkout_expires_at: datetime | None,
    kind: PaymentKind = PaymentKind.CHECKOUT,
) -> Booking:
    """Insert a Pending booking for `body` (already checked, under the teacher's lock) and its open
    payment: a checkout expiring at `checkout_expires_at`, or (a series' later week) a card charged
    off-session, which has no expiry."""
    price = price_for(hourly_rate=profile.hourly_rate, minutes=body.duration_minutes)
    start = body.starts_at
    booking = Booking(
        id=uuid.uuid4(),
        parent_id=parent.id,
        student_id=body.student_id,
        teacher_id=body.teacher_id,
        subject=body.subject,
        starts_at=start,
        ends_at=start + timedelta(minutes=body.duration_minutes),
        price_amount=price,
        currency=profile.currency,
    )
    repo.insert(session, booking, lifecycle.book(now=now), actor=parent.actor)
    records.open_payment(
        session,
        booking,
        now=now,
        kind=kind,
        payout_destination=destination,
        platform_fee_amount=policy.platform_fee(amount=price, percent=settings.platform_fee_percent)
        if destination
        else None,
        checkout_expires_at=checkout_expires_at,
    )
    return booking


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


def request_problems(*, profile: TeacherProfile, subject: str, minutes: int) -> list[dict[str, str]]:
    """What stops this teacher being booked for `subject` for `minutes` at any time: a subject
    they do not teach, no price or one Stripe would not take, not listed."""
    problems: list[dict[str, str]] = []
    if profile.subjects and subject.lower() not in {s.lower() for s in profile.subjects}:
        problems.append({"field": "subject", "message": "this teacher does not teach it"})
    if profile.hourly_rate <= 0:
        problems.append({"field": "teacherId", "message": "this teacher has no price yet"})
    else:
        problems += _chargeable(profile, minutes=minutes)
    if not profile.listed:
        problems.append({"field": "teacherId", "message": "this teacher is not taking bookings"})
    return problems


def check_slot(
    session: Session,
    *,
    profile: TeacherProfile,
    body: BookIn,
    start: datetime,
    end: datetime,
    now: datetime,
    wallet: repo.Wallet | None = None,
) -> repo.SlotState:
    """422 unless this teacher may be booked for `body` at [start, end) (subject, price, listed,
    the start, the hours and time off); 409 if their calendar is busy then; then whether another
    Pending or Confirmed booking holds part of it (`clash`). The hours, time off, calendars and
    bookings are ONE statement (`repository.slot_state`, with `wallet` the lot to draw from
    besides), under the teacher's lock."""
    problems = request_problems(profile=profile, subject=body.subject, minutes=body.duration_minutes)
    problems += start_problems(start, now=now)
    if problems:
        raise Unprocessable("This booking cannot be made", data=problems)
    state = repo.slot_state(session, teacher_id=profile.user_id, start=start, end=end, wallet=wallet)
    if not slots.within_windows(state.windows, zone=profile.time_zone, start=start, end=end):
        _refuse("outside_hours")
    if state.time_off:
        _refuse("time_off")
    if state.calendar:
        _refuse("calendar")
    return state


def check_offered(session: Session, *, profile: TeacherProfile, start: datetime, end: datetime) -> None:
    """422 unless the teacher offers [start, end): inside their weekly hours and clear of their
    time off; 409 if one of their calendars is busy then (the check booking and rescheduling share;
    overlaps with other bookings are checked apart, under the lock)."""
    why = why_not_offered(session, profile=profile, start=start, end=end)
    if why is not None:
        _refuse(why)


def _refuse(why: Literal["outside_hours", "time_off", "calendar"]) -> None:
    """The refusal of a time the teacher does not offer: 422 (hours, time off), 409 (calendar)."""
    if why == "outside_hours":
        raise Unprocessable(
            "This time is outside the teacher's availability",
            data=[{"field": "startsAt", "message": "outside availability"}],
        )
    if why == "time_off":
        raise Unprocessable(
            "The teacher is away at this time", data=[{"field": "startsAt", "message": "during time off"}]
        )
    if why == "calendar":
        raise CalendarBusy()


def why_not_offered(
    session: Session, *, profile: TeacherProfile, start: datetime, end: datetime
) -> Literal["outside_hours", "time_off", "calendar"] | None:
    """Why the teacher does not offer [start, end): outside their weekly hours, during their time
    off, or one of their calendars busy (checked again at booking, not only when the times were
    shown: a sync may have brought it since); None when they offer it."""
    if not offered(session, profile=profile, start=start, end=end):
        return "outside_hours"
    if teachers.is_time_off(session, profile.user_id, start=start, end=end):
        return "time_off"
    if calendars.is_busy(session, profile.user_id, start=start, end=end):
        return "calendar"
    return None


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
        and other.checkout_id is not None
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
    if not records.attach_checkout(session, booking, **fields):
        raise BookingNotFound()
    return booking


def checkout_urls(*, public_url: str, booking_id: uuid.UUID) -> tuple[str, str]:
    """success_url and cancel_url exactly as the frontend expects them."""
    base = public_url.rstrip("/")
    success = f"{base}/payment/success?session_id={CHECKOUT_TEMPLATE}&type=session-booking"
    cancel = f"{base}/payment/cancel?session_id={CHECKOUT_TEMPLATE}&type=session-booking&booking_id={booking_id}"
    return success, cancel


def terms_of(booking: Booking, *, settings: Settings) -> Terms:
    """The terms stored on the booking when it was paid (the platform's before that)."""
    return policy.stored(booking, platform=Terms.platform(settings))


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
