"""The series' use cases, sync, one transaction each (the caller's session), taking `now`: the
preview (each week free or why not), the series made (every chosen week held, or none), the series
as its people see it, and the rest of it cancelled from a date. Stripe is called around these, by
`tutorbook.flows.series`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from tutorbook.accounts import service as accounts
from tutorbook.bookings import cancelling, crediting, reserving, settling
from tutorbook.bookings import repository as bookings
from tutorbook.bookings.errors import TeacherNotPayable
from tutorbook.bookings.lifecycle import STATUS_NAMES, Status
from tutorbook.bookings.models import Booking
from tutorbook.bookings.outcomes import Followups, OutcomeKind
from tutorbook.bookings.payment_states import PaymentKind
from tutorbook.bookings.schemas import BookIn
from tutorbook.config import Settings
from tutorbook.errors import Conflict, Forbidden, NotFound, Unprocessable
from tutorbook.identity import AuthUser, Role
from tutorbook.series import repository as repo
from tutorbook.series import weeks as weekly
from tutorbook.series.models import Occurrence, Series
from tutorbook.series.schemas import (
    NotFree,
    OccurrenceOut,
    PaymentShown,
    PreviewOut,
    SeriesIn,
    SeriesOut,
    SeriesPreviewIn,
    WeekOut,
)
from tutorbook.teachers import payouts
from tutorbook.teachers.models import TeacherProfile
from tutorbook.teachers.policy import Terms

YEAR_AHEAD = timedelta(days=366)


class WeeksTaken(Conflict):
    """Some chosen weeks are not free: nothing was booked; `data` lists them with the reason."""

    message = "Some of the chosen weeks are not free; nothing was booked"


class SeriesNotFound(NotFound):
    message = "Series not found"


@dataclass(frozen=True)
class Made:
    """A series just made: it, its first booking (a card series': paid at Checkout), every booking
    it holds, and the names for the checkout."""

    series: Series
    first: Booking
    held: list[Booking]
    teacher_name: str
    student_name: str


def _teacher(session: Session, teacher_id: uuid.UUID, *, lock: bool) -> tuple[TeacherProfile, str]:
    found = bookings.teacher_for_booking(session, teacher_id, lock=lock)
    if found is None:
        raise NotFound("Teacher not found")
    return found[0], found[1]


def _check(profile: TeacherProfile, body: SeriesPreviewIn, *, now: datetime) -> None:
    problems = reserving.request_problems(profile=profile, subject=body.subject, minutes=body.duration_minutes)
    problems += reserving.start_problems(body.first_starts_at, now=now)
    if problems:
        for problem in problems:
            problem["field"] = "firstStartsAt" if problem["field"] == "startsAt" else problem["field"]
        raise Unprocessable("This series cannot be booked", data=problems)


def _weeks(session: Session, *, profile: TeacherProfile, body: SeriesPreviewIn, now: datetime) -> list[WeekOut]:
    """Each week's start and whether it is free (the checks of a lone booking, week by week)."""
    length = timedelta(minutes=body.duration_minutes)
    found = []
    for k, start in enumerate(weekly.starts(body.first_starts_at, weeks=body.weeks, zone=profile.time_zone)):
        end = start + length
        reason: NotFree | None = reserving.why_not_offered(session, profile=profile, start=start, end=end)
        if start > now + YEAR_AHEAD:
            reason = "too_far"
        elif reason is None and bookings.overlapping(session, teacher_id=profile.user_id, start=start, end=end):
            reason = "busy"
        day = weekly.local_date(start, zone=profile.time_zone)
        found.append(WeekOut(week=k + 1, date=day, starts_at=start, ends_at=end, free=reason is None, reason=reason))
    return found


def preview(session: Session, *, parent: AuthUser, body: SeriesPreviewIn, now: datetime) -> PreviewOut:
    """Each week of the series: its start and whether it is free, or why not."""
    accounts.own_student(session, parent_id=parent.id, student_id=body.student_id)
    profile, _ = _teacher(session, body.teacher_id, lock=False)
    _check(profile, body, now=now)
    return PreviewOut(
        price_amount=reserving.price_for(hourly_rate=profile.hourly_rate, minutes=body.duration_minutes),
        currency=profile.currency,
        time_zone=profile.time_zone,
        weeks=_weeks(session, profile=profile, body=body, now=now),
    )


def _chosen(plan: list[WeekOut], skip: list[date]) -> list[WeekOut]:
    dates = {w.date for w in plan}
    strangers = sorted(set(skip) - dates)
    if strangers:
        raise Unprocessable(
            "Only the series' own weeks can be skipped",
            data=[{"field": "skip", "message": f"{d.isoformat()} is not a week of this series"} for d in strangers],
        )
    chosen = [w for w in plan if w.date not in set(skip)]
    if not chosen:
        raise Unprocessable("Every week is skipped", data=[{"field": "skip", "message": "leave at least one week"}])
    taken = [w for w in chosen if not w.free]
    if taken:
        raise WeeksTaken(
            data=[{"week": w.week, "date": w.date.isoformat(), "reason": w.reason or "busy"} for w in taken]
        )
    return chosen


def create(
    session: Session, *, parent: AuthUser, body: SeriesIn, settings: Settings, platform: Terms, now: datetime
) -> Made:
    """Hold every chosen week, under the teacher's lock, or none of them (WeeksTaken, 409, naming
    the weeks). A card series: each week a Pending booking, the first paid at Checkout, each later
    one waiting for its off-session charge, due `series_charge_days_before` days before it. A
    credit series: one credit drawn a week, every week Confirmed at once (NotEnoughCredits, 409,
    saying how many are missing; nothing drawn)."""
    student = accounts.own_student(session, parent_id=parent.id, student_id=body.student_id)
    profile, teacher_name = _teacher(session, body.teacher_id, lock=settings.booking_guard)
    _check(profile, body, now=now)
    chosen = _chosen(_weeks(session, profile=profile, body=body, now=now), body.skip)
    if body.pay_with == "credit":
        _enough_credits(session, parent=parent, body=body, needed=len(chosen), now=now)
    destination = payouts.destination(session, teacher_id=body.teacher_id)
    if destination is None and settings.require_teacher_payouts:
        raise TeacherNotPayable()
    series = Series(
        id=uuid.uuid4(),
        parent_id=parent.id,
        student_id=body.student_id,
        teacher_id=body.teacher_id,
        subject=body.subject,
        first_starts_at=body.first_starts_at,
        duration_minutes=body.duration_minutes,
        weeks=body.weeks,
        time_zone=profile.time_zone,
        pay_with=body.pay_with,
        created_at=now,
        updated_at=now,
    )
    rows, held = [], []
    ahead = timedelta(days=settings.series_charge_days_before)
    for i, week in enumerate(chosen):
        first = i == 0
        lesson = BookIn(
            teacher_id=body.teacher_id,
            student_id=body.student_id,
            subject=body.subject,
            starts_at=week.starts_at,
            duration_minutes=body.duration_minutes,
        )
        if body.pay_with == "credit":  # one credit a week, each week Confirmed at once
            booking = crediting.hold_with_credit(session, parent=parent, body=lesson, platform=platform, now=now)
            held.append(booking)
            rows.append({"booking_id": booking.id, "week": week.week - 1, "original_starts_at": week.starts_at})
            continue
        booking = reserving.hold(
            session,
            parent=parent,
            body=lesson,
            profile=profile,
            destination=destination,
            settings=settings,
            now=now,
            checkout_expires_at=now + timedelta(minutes=settings.checkout_ttl_minutes) + reserving.EXPIRY_MARGIN
            if first
            else None,
            kind=PaymentKind.CHECKOUT if first else PaymentKind.OFF_SESSION,
        )
        held.append(booking)
        rows.append(
            {
                "booking_id": booking.id,
                "week": week.week - 1,
                "original_starts_at": week.starts_at,
                "charge_due_at": None if first else week.starts_at - ahead,
            }
        )
    repo.add(session, series, rows)
    return Made(series, held[0], held, teacher_name, student.full_name)


class NotEnoughCredits(Conflict):
    """The family's wallet holds fewer credits of this teacher and length than the weeks chosen."""


def _enough_credits(session: Session, *, parent: AuthUser, body: SeriesIn, needed: int, now: datetime) -> None:
    have = crediting.credits_for(
        session, parent_id=parent.id, teacher_id=body.teacher_id, minutes=body.duration_minutes, now=now
    )
    if have < needed:
        missing = needed - have
        raise NotEnoughCredits(
            f"These {needed} weeks need {needed} credits of this teacher and length; you have {have}: "
            f"{missing} missing. Nothing was booked",
            data={"needed": needed, "available": have, "missing": missing},
        )


# -- what its people see ------------------------------------------------------------------


def may_see(user: AuthUser, series: Series) -> bool:
    return (
        user.role == Role.ADMIN
        or (user.role == Role.PARENT and series.parent_id == user.id)
        or (user.role == Role.TEACHER and series.teacher_id == user.id)
    )


def get_for(session: Session, *, user: AuthUser, series_id: uuid.UUID) -> Series:
    """A series the caller may see (its parent, its teacher, an admin): 404, then 403."""
    series = repo.get(session, series_id)
    if series is None:
        raise SeriesNotFound()
    if not may_see(user, series):
        raise Forbidden("This series is not yours")
    return series


def payment_shown(occurrence: Occurrence, booking: Booking) -> PaymentShown:
    """How an occurrence is paid, in one word (OccurrenceOut.payment)."""
    kind = booking.payment.kind if booking.payment else None
    if booking.status == Status.PENDING:
        if kind == PaymentKind.OFF_SESSION:
            return "due" if occurrence.charge_failure else "reserved"
        return "checkout"
    if booking.paid_at is None:
        return "unpaid"
    if booking.payment is not None and booking.refunded_amount >= booking.price_amount > 0:
        return "refunded"
    return "credit" if kind == "credit" else "paid"


def _label(shown: PaymentShown, occurrence: Occurrence, booking: Booking, zone: str) -> str:
    if shown == "reserved" and occurrence.charge_due_at is not None:
        return f"Reserved — charged on {weekly.local_date(occurrence.charge_due_at, zone=zone).isoformat()}"
    if shown == "due" and occurrence.pay_deadline_at is not None:
        return f"Payment due by {occurrence.pay_deadline_at:%Y-%m-%d %H:%M} UTC"
    if shown == "checkout":
        return "Awaiting payment"
    name = STATUS_NAMES[int(booking.status)]
    return f"{name} — refunded" if shown == "refunded" else name


def occurrence_out(occurrence: Occurrence, booking: Booking, *, zone: str) -> OccurrenceOut:
    shown = payment_shown(occurrence, booking)
    return OccurrenceOut(
        week=occurrence.week + 1,
        booking_id=booking.id,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        original_starts_at=occurrence.original_starts_at,
        status=int(booking.status),
        status_name=STATUS_NAMES[int(booking.status)],
        payment=shown,
        charge_on=weekly.local_date(occurrence.charge_due_at, zone=zone)
        if shown == "reserved" and occurrence.charge_due_at
        else None,
        pay_deadline_at=occurrence.pay_deadline_at if shown == "due" else None,
        checkout_url=booking.checkout_url if booking.status == Status.PENDING else None,
        refunded_amount=booking.refunded_amount,
        label=_label(shown, occurrence, booking, zone),
    )


def view(session: Session, *, series: Series) -> SeriesOut:
    """The series with its occurrences (status and payment), by week."""
    found = repo.occurrences(session, series.id)
    first = found[0][1] if found else None
    return SeriesOut(
        id=series.id,
        parent_id=series.parent_id,
        student_id=series.student_id,
        teacher_id=series.teacher_id,
        subject=series.subject,
        first_starts_at=series.first_starts_at,
        duration_minutes=series.duration_minutes,
        weeks=series.weeks,
        time_zone=series.time_zone,
        pay_with=series.pay_with,
        sequence=repo.sequence(session, series.id),
        price_amount=first.price_amount if first else 0,
        currency=first.currency if first else "",
        checkout_url=first.checkout_url if first is not None and first.status == Status.PENDING else None,
        occurrences=[occurrence_out(o, b, zone=series.time_zone) for o, b in found],
    )


def show(session: Session, *, user: AuthUser, series_id: uuid.UUID) -> SeriesOut:
    """GET /api/Series/{id}: the series for one who may see it."""
    return view(session, series=get_for(session, user=user, series_id=series_id))


# -- the rest of it cancelled ---------------------------------------------------------------


@dataclass
class CancelledFrom:
    """What cancelling from a date did: the bookings cancelled, and their follow-ups."""

    cancelled: list[uuid.UUID] = field(default_factory=list)
    followups: Followups = field(default_factory=Followups)


def to_cancel_from(session: Session, *, user: AuthUser, series_id: uuid.UUID, day: date) -> list[Booking]:
    """The series' still-held occurrences on or after `day` (the teacher's calendar date)."""
    series = get_for(session, user=user, series_id=series_id)
    return [
        b
        for _, b in repo.occurrences(session, series.id)
        if b.status in (Status.PENDING, Status.CONFIRMED)
        and weekly.local_date(b.starts_at, zone=series.time_zone) >= day
    ]


def cancel_from(
    session: Session, *, user: AuthUser, series_id: uuid.UUID, day: date, settings: Settings, now: datetime
) -> CancelledFrom:
    """Cancel the occurrence on `day` and every later one, each by its own terms: a paid one as a
    lone paid booking is (its refund by its terms; the cancellation emails), an unpaid one given up.
    One transaction. (An open checkout among them is withdrawn at Stripe first, by the flow.)"""
    done = CancelledFrom()
    for booking in to_cancel_from(session, user=user, series_id=series_id, day=day):
        if booking.status == Status.CONFIRMED:
            outcome = cancelling.cancel_confirmed(session, user=user, booking_id=booking.id, settings=settings, now=now)
            if outcome.kind == OutcomeKind.CANCELLED:
                done.cancelled.append(booking.id)
                done.followups.refunds += outcome.followups.refunds
                done.followups.unlinks += outcome.followups.unlinks
        else:
            reason = cancelling.cancel_reason(user)
            settling.cancel_unpaid(session, booking_id=booking.id, reason=reason, actor=user.actor, now=now)
            done.cancelled.append(booking.id)
    if not done.cancelled:
        raise Unprocessable(
            "No held lesson of this series is on or after this date",
            data=[{"field": "from", "message": "nothing to cancel from this date"}],
        )
    return done


def marks(session: Session, *, booking_ids: list[uuid.UUID]) -> dict[str, dict[str, str]]:
    """For the lists (My Bookings, the schedule): of those bookings in a series, by booking id,
    the series' id and what the lesson's payment says ("Reserved — charged on ...")."""
    in_series = repo.series_ids(session, booking_ids)
    out: dict[str, dict[str, str]] = {}
    for series_id in set(in_series.values()):
        series = repo.get(session, series_id)
        if series is None:
            continue
        for occurrence, booking in repo.occurrences(session, series_id):
            if booking.id in in_series:
                label = _label(payment_shown(occurrence, booking), occurrence, booking, series.time_zone)
                out[str(booking.id)] = {"series": str(series_id), "label": label}
    return out
