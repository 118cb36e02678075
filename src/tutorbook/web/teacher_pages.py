"""The teachers list, one teacher's free slots by week, and booking (-> the checkout page)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from pydantic import AfterValidator, StringConstraints, ValidationError
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from tutorbook.accounts import service as accounts
from tutorbook.api.deps import get_services
from tutorbook.bookings import reporting, reserving
from tutorbook.bookings.schemas import BookIn
from tutorbook.clock import iso_z, utc_now
from tutorbook.config import ALLOWED_DURATIONS
from tutorbook.errors import AppError
from tutorbook.flows import booking as flows
from tutorbook.identity import AuthUser, Role
from tutorbook.teachers import service as teachers
from tutorbook.teachers.policy import Terms
from tutorbook.teachers.schemas import SubjectFilter, TeacherOut
from tutorbook.validation import single_line, small_number
from tutorbook.web import credit_pages
from tutorbook.web import formatting as fmt
from tutorbook.web.core import (
    page_router,
    page_user,
    read_form,
    redirect,
    render,
    require,
    viewer_locale,
    viewer_zone,
)

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]
DEFAULT_MINUTES = 60
MAX_WEEK = 52
# The chosen start in a teacher page's link (an ISO instant; anything else just chooses nothing).
StartChoice = Annotated[str, StringConstraints(max_length=40), AfterValidator(single_line)]
FIELD_NAMES = {
    "startsAt": "start time",
    "starts_at": "start time",
    "subject": "subject",
    "teacherId": "teacher",
    "teacher_id": "teacher",
    "student_id": "child",
    "duration_minutes": "length",
}


@router.get("/")
async def teachers_page(request: Request, user: Viewer, subject: SubjectFilter | None = Query(None)) -> Response:
    listed = await get_services(request).tx(teachers.list_teachers)
    subjects = sorted({s for t in listed for s in t.subjects}, key=str.lower)
    if subject:
        listed = [t for t in listed if subject.lower() in (s.lower() for s in t.subjects)]
    return render(request, "teachers.html", teachers=listed, subjects=subjects, subject=subject or "")


# -- one teacher's week ----------------------------------------------------------------


def week_range(zone: str, week: int, now: datetime) -> tuple[datetime, datetime]:
    """[local midnight today + 7*week days, +7 days) in `zone`, as UTC instants."""
    tz = ZoneInfo(zone)
    first = now.astimezone(tz).date() + timedelta(days=7 * week)
    start = datetime.combine(first, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(first + timedelta(days=7), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def days(starts: list[datetime], *, zone: str, loc: str, start: datetime) -> list[dict[str, Any]]:
    """Seven days from `start` in `zone`, each with the start times offered on it."""
    tz = ZoneInfo(zone)
    first = start.astimezone(tz).date()
    out: list[dict[str, Any]] = [{"date": first + timedelta(days=i), "starts": []} for i in range(7)]
    index = {d["date"]: d for d in out}
    for t in starts:
        if (d := index.get(t.astimezone(tz).date())) is not None:
            d["starts"].append({"value": iso_z(t), "label": fmt.clock(t, zone, loc)})
    for d in out:
        noon = datetime.combine(d["date"], time(12), tzinfo=tz)
        d["label"] = fmt.long_day(noon, zone, loc)
    return out


def _week_data(
    session: Session,
    *,
    teacher_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    start: datetime,
    end: datetime,
    minutes: int,
    now: datetime,
    platform: Terms,
) -> tuple[TeacherOut, list[datetime], list[dict[str, str]], Terms]:
    teacher = teachers.get_teacher(session, teacher_id)
    starts = reporting.bookable_starts(session, teacher_id=teacher_id, start=start, end=end, minutes=minutes, now=now)
    children = accounts.list_students(session, parent_id=parent_id) if parent_id else []
    terms, _ = teachers.terms(session, teacher_id=teacher_id, platform=platform)
    return teacher, starts, [{"id": str(c.id), "full_name": c.full_name} for c in children], terms


def _minutes(value: object) -> int:
    """A length the teacher page offers (a form or query value), otherwise the default."""
    number = small_number(str(value or ""), digits=3)
    return number if number in ALLOWED_DURATIONS else DEFAULT_MINUTES


async def teacher_view(
    request: Request,
    user: AuthUser | None,
    *,
    teacher_id: uuid.UUID,
    week: int,
    minutes: int = DEFAULT_MINUTES,
    chosen: str | None = None,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    """Render one teacher's week for a session length: only the starts where it fits; the
    booking form next to the chosen start (also after a failed booking, with its message)."""
    zone, loc, now = viewer_zone(request, user), viewer_locale(request), utc_now()
    start, end = week_range(zone, week, now)
    parent_id = user.id if user and user.role == Role.PARENT else None
    svc = get_services(request)
    teacher, starts, children, terms = await svc.tx(
        _week_data,
        teacher_id=teacher_id,
        parent_id=parent_id,
        start=start,
        end=end,
        minutes=minutes,
        now=now,
        platform=svc.terms,
    )
    durations = [
        {
            "minutes": m,
            "price": fmt.money(reserving.price_for(hourly_rate=teacher.hourly_rate, minutes=m), teacher.currency),
        }
        for m in ALLOWED_DURATIONS
    ]
    extra.update(
        await svc.read(credit_pages.teacher_offers, teacher_id=teacher_id, parent_id=parent_id, minutes=minutes)
    )
    offered = {iso_z(t): t for t in starts}
    chosen_at = offered.get(chosen or "")
    extra.setdefault("selected", {})
    return render(
        request,
        "teacher.html",
        status_code=status_code,
        teacher=teacher,
        week=week,
        max_week=MAX_WEEK,
        minutes=minutes,
        days=days(starts, zone=zone, loc=loc, start=start),
        children=children,
        durations=durations,
        price=fmt.money(reserving.price_for(hourly_rate=teacher.hourly_rate, minutes=minutes), teacher.currency),
        chosen=iso_z(chosen_at) if chosen_at else None,
        chosen_when=fmt.when(chosen_at, chosen_at + timedelta(minutes=minutes), zone, loc) if chosen_at else "",
        week_label=fmt.day(start, zone, loc),
        terms_sentence=terms.sentence(),
        **extra,
    )


@router.get("/teachers/{teacher_id}")
async def teacher_page(
    teacher_id: uuid.UUID,
    request: Request,
    user: Viewer,
    week: int = Query(0, ge=0, le=MAX_WEEK),
    duration: int = Query(DEFAULT_MINUTES),
    start: StartChoice | None = Query(None),
) -> Response:
    return await teacher_view(request, user, teacher_id=teacher_id, week=week, minutes=_minutes(duration), chosen=start)


# -- booking ---------------------------------------------------------------------------


def book_in(form: dict[str, Any]) -> BookIn:
    """The API's booking body from the form; ValidationError names what is missing."""
    return BookIn(
        teacher_id=form.get("teacher_id"),
        student_id=form.get("student_id"),
        subject=form.get("subject", ""),
        starts_at=form.get("starts_at"),
        duration_minutes=small_number(form.get("duration_minutes")),
        pay_with="credit" if form.get("pay_with") == "credit" else "checkout",
    )


def booking_problems(exc: ValidationError | AppError) -> list[str]:
    """What to fix, in words, from a validation error or the service's field list."""
    if isinstance(exc, ValidationError):
        fields = [str(e["loc"][0]) for e in exc.errors() if e.get("loc")]
        return [f"Choose a {FIELD_NAMES.get(f, f)}." for f in dict.fromkeys(fields)]
    details = exc.data if isinstance(exc.data, list) else []
    return [exc.message] + [
        f"The {FIELD_NAMES.get(d.get('field') or '', 'booking')}: {d.get('message')}."
        for d in details
        if isinstance(d, dict) and d.get("message")
    ]


@router.post("/book")
async def book(request: Request, user: Viewer) -> Response:
    parent = require(user, Role.PARENT)
    form = await read_form(request)
    week = small_number(form.get("week")) or 0
    if form.get("repeat") == "weekly":  # "Every week": the weeks previewed first (series_pages)
        query = {k: form.get(k, "") for k in ("teacher_id", "student_id", "subject", "starts_at", "duration_minutes")}
        weekly = {**query, "weeks": form.get("weeks", ""), "pay_with": form.get("pay_with") or "card"}
        return RedirectResponse("/series/new?" + urlencode(weekly), status_code=303)
    try:
        body = book_in(form)
        zone, loc = viewer_zone(request, parent), viewer_locale(request)
        booking = (await flows.book(get_services(request), parent=parent, body=body, zone=zone, locale=loc)).booking
    except (ValidationError, AppError) as exc:
        teacher_id = _uuid(form.get("teacher_id"))
        if teacher_id is None:
            raise AppError("Choose a teacher first.") from exc
        status = exc.status_code if isinstance(exc, AppError) else 422
        return await teacher_view(
            request,
            user,
            teacher_id=teacher_id,
            week=min(week, MAX_WEEK),
            minutes=_minutes(form.get("duration_minutes")),
            chosen=form.get("starts_at"),
            status_code=status,
            errors=booking_problems(exc),
            selected=form,
        )
    if body.pay_with == "credit":  # paid with a credit: confirmed already, no checkout
        return redirect(request, "/my-bookings", notice="Booked with a credit: the session is confirmed.")
    assert booking.checkout_url is not None  # flows.book answers with the booking's open checkout
    return RedirectResponse(booking.checkout_url, status_code=303)


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value or "")
    except ValueError:
        return None
