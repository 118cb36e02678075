"""The teachers list, one teacher's free slots by week, and booking (-> the checkout page)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse

from tutorbook.accounts import service as accounts
from tutorbook.api.deps import get_services
from tutorbook.bookings import service as bookings
from tutorbook.bookings.schemas import BookIn
from tutorbook.clock import utc_now
from tutorbook.config import ALLOWED_DURATIONS
from tutorbook.errors import AppError
from tutorbook.flows import booking as flows
from tutorbook.identity import AuthUser, Role
from tutorbook.teachers import service as teachers
from tutorbook.teachers.schemas import SubjectFilter
from tutorbook.validation import small_number
from tutorbook.web import formatting as fmt
from tutorbook.web.core import page_router, page_user, read_form, render, require, viewer_zone

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]
STEP = timedelta(minutes=30)
SHORTEST = timedelta(minutes=min(ALLOWED_DURATIONS))
MAX_WEEK = 52
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
async def teachers_page(request: Request, user: Viewer, subject: SubjectFilter | None = Query(None)):
    bookable = await get_services(request).tx(teachers.list_teachers)
    subjects = sorted({s for t in bookable for s in t.subjects}, key=str.lower)
    if subject:
        bookable = [t for t in bookable if subject.lower() in (s.lower() for s in t.subjects)]
    return render(request, "teachers.html", teachers=bookable, subjects=subjects, subject=subject or "")


# -- one teacher's week ----------------------------------------------------------------


def week_range(zone: str, week: int, now: datetime) -> tuple[datetime, datetime]:
    """[local midnight today + 7*week days, +7 days) in `zone`, as UTC instants."""
    tz = ZoneInfo(zone)
    first = now.astimezone(tz).date() + timedelta(days=7 * week)
    start = datetime.combine(first, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(first + timedelta(days=7), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def bookable(free: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The free intervals from their first half-hour mark, where the shortest session fits."""
    step = int(STEP.total_seconds())
    out = []
    for s, e in free:
        s = datetime.fromtimestamp(-(-int(s.timestamp()) // step) * step, UTC)
        if s + SHORTEST <= e:
            out.append((s, e))
    return out


def start_times(free: list[tuple[datetime, datetime]]) -> list[datetime]:
    """Every half hour in the free intervals where the shortest session still fits."""
    out = []
    for s, e in bookable(free):
        while s + SHORTEST <= e:
            out.append(s)
            s += STEP
    return out


def days(free, *, zone: str, start: datetime) -> list[dict]:
    """Seven days from `start`, each with its free ranges and start times in `zone`."""
    tz = ZoneInfo(zone)
    first = start.astimezone(tz).date()
    out: list[dict[str, Any]] = [{"date": first + timedelta(days=i), "ranges": [], "starts": []} for i in range(7)]
    index = {d["date"]: d for d in out}
    for s, e in bookable(free):
        if (d := index.get(s.astimezone(tz).date())) is not None:
            d["ranges"].append(f"{fmt.clock(s, zone)}–{fmt.clock(e, zone)}")
    for t in start_times(free):
        if (d := index.get(t.astimezone(tz).date())) is not None:
            d["starts"].append({"value": fmt.iso_z(t), "label": fmt.clock(t, zone)})
    for d in out:
        d["label"] = f"{d['date']:%A} {d['date'].day} {d['date']:%B}"
    return out


def _week_data(session, *, teacher_id: uuid.UUID, parent_id: uuid.UUID | None, start, end, now):
    teacher = teachers.get_teacher(session, teacher_id)
    free = bookings.free_slots(session, teacher_id=teacher_id, start=start, end=end, now=now)
    children = accounts.list_students(session, parent_id=parent_id) if parent_id else []
    return teacher, free, [{"id": str(c.id), "full_name": c.full_name} for c in children]


async def teacher_view(
    request: Request,
    user: AuthUser | None,
    *,
    teacher_id: uuid.UUID,
    week: int,
    status_code: int = 200,
    **extra,
):
    """Render one teacher's week (also after a failed booking, with its message)."""
    zone, now = viewer_zone(user), utc_now()
    start, end = week_range(zone, week, now)
    parent_id = user.id if user and user.role == Role.PARENT else None
    teacher, free, children = await get_services(request).tx(
        _week_data, teacher_id=teacher_id, parent_id=parent_id, start=start, end=end, now=now
    )
    durations = [
        {
            "minutes": m,
            "price": fmt.money(bookings.price_for(hourly_rate=teacher.hourly_rate, minutes=m), teacher.currency),
        }
        for m in ALLOWED_DURATIONS
    ]
    extra.setdefault("selected", {"duration_minutes": "60"})
    return render(
        request,
        "teacher.html",
        status_code=status_code,
        teacher=teacher,
        week=week,
        max_week=MAX_WEEK,
        days=days(free, zone=zone, start=start),
        children=children,
        durations=durations,
        week_label=fmt.day(start, zone),
        **extra,
    )


@router.get("/teachers/{teacher_id}")
async def teacher_page(teacher_id: uuid.UUID, request: Request, user: Viewer, week: int = Query(0, ge=0, le=MAX_WEEK)):
    return await teacher_view(request, user, teacher_id=teacher_id, week=week)


# -- booking ---------------------------------------------------------------------------


def book_in(form: dict) -> BookIn:
    """The API's booking body from the form; ValidationError names what is missing."""
    return BookIn(
        teacher_id=form.get("teacher_id"),
        student_id=form.get("student_id"),
        subject=form.get("subject", ""),
        starts_at=form.get("starts_at"),
        duration_minutes=small_number(form.get("duration_minutes")),
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
async def book(request: Request, user: Viewer):
    parent = require(user, Role.PARENT)
    form = await read_form(request)
    week = small_number(form.get("week")) or 0
    try:
        body = book_in(form)
        booking = (await flows.book(get_services(request), parent=parent, body=body)).booking
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
            status_code=status,
            errors=booking_problems(exc),
            selected=form,
        )
    assert booking.checkout_url is not None  # flows.book answers with the booking's open checkout
    return RedirectResponse(booking.checkout_url, status_code=303)


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value or "")
    except ValueError:
        return None
