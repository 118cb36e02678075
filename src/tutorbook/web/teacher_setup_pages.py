"""A teacher sets themselves up: profile, weekly hours, time off, and the checklist of what is
missing before parents can find and book them. The same use cases as /api/Teachers/me."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

from fastapi import Depends, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.responses import Response

from tutorbook import currencies
from tutorbook.api.deps import get_services
from tutorbook.bookings import reporting
from tutorbook.clock import utc_now
from tutorbook.errors import AppError
from tutorbook.identity import AuthUser, Role
from tutorbook.teachers import service as teachers
from tutorbook.teachers import slots
from tutorbook.teachers.schemas import ProfileIn, TeacherOut, TimeOffIn, WindowIn, hhmm, minutes
from tutorbook.validation import small_number
from tutorbook.web.account_pages import problems
from tutorbook.web.core import page_router, page_user, read_form, redirect, render, require, viewer_zone

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]
ZONES = sorted(available_timezones())
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
CURRENCIES = sorted(currencies.SUPPORTED)  # the ones Stripe publishes a minimum charge for
STEP_LINKS = {"price": "/teacher/profile", "subjects": "/teacher/profile", "hours": "/teacher/hours"}
BLANK_ROWS = 3


def checklist_view(gaps: list[str]) -> list[dict[str, Any]]:
    """Every checklist step, done or not, with where to do it."""
    return [
        {"key": key, "text": text, "done": key not in gaps, "href": STEP_LINKS[key]}
        for key, text in teachers.CHECKLIST.items()
    ]


def _decimals(currency: str) -> int:
    return currencies.exponent(currency)


def rate_text(amount: int, currency: str) -> str:
    places = _decimals(currency)
    return f"{Decimal(amount) / 10**places:.{places}f}"


def rate_minor(text: str, currency: str) -> int | str:
    """ "50" or "50.00" per hour -> minor units; the text back when it is not a price (422 then)."""
    try:
        value = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        return text
    minor = value * 10 ** _decimals(currency)
    return int(minor) if minor == minor.to_integral_value() and value.is_finite() else text


# -- profile ---------------------------------------------------------------------------


def _profile(session: Session, *, teacher_id: uuid.UUID) -> tuple[TeacherOut, list[str]]:
    return teachers.get_teacher(session, teacher_id), teachers.checklist(session, teacher_id)


def _profile_form(teacher: TeacherOut) -> dict[str, Any]:
    return {
        "full_name": teacher.full_name,
        "bio": teacher.bio,
        "subjects": ", ".join(teacher.subjects),
        "hourly_rate": rate_text(teacher.hourly_rate, teacher.currency) if teacher.hourly_rate else "",
        "currency": teacher.currency,
        "time_zone": teacher.time_zone,
    }


@router.get("/teacher/profile")
async def profile_page(request: Request, user: Viewer) -> Response:
    me = require(user, Role.TEACHER)
    teacher, gaps = await get_services(request).tx(_profile, teacher_id=me.id)
    return render(
        request,
        "teacher_profile.html",
        form=_profile_form(teacher),
        checklist=checklist_view(gaps),
        zones=ZONES,
        currencies=CURRENCIES,
    )


@router.post("/teacher/profile")
async def save_profile(request: Request, user: Viewer) -> Response:
    me = require(user, Role.TEACHER)
    form = await read_form(request)
    svc = get_services(request)
    currency = (form.get("currency") or "usd").strip()
    try:
        body = ProfileIn(
            full_name=form.get("full_name") or None,
            bio=form.get("bio", ""),
            subjects=[s for s in (form.get("subjects") or "").split(",") if s.strip()],
            hourly_rate=rate_minor(form.get("hourly_rate") or "0", currency),
            currency=currency,
            time_zone=form.get("time_zone", ""),
        )
        await svc.tx(teachers.update_profile, teacher_id=me.id, fields=body.model_dump())
    except (ValidationError, AppError) as exc:
        errors = problems(exc) if isinstance(exc, ValidationError) else [exc.message]
        _, gaps = await svc.tx(_profile, teacher_id=me.id)
        return render(
            request,
            "teacher_profile.html",
            status_code=422,
            errors=errors,
            form=form,
            checklist=checklist_view(gaps),
            zones=ZONES,
            currencies=CURRENCIES,
        )
    return redirect(request, "/teacher/profile", notice="Profile saved.")


# -- weekly hours ----------------------------------------------------------------------


def _hours(session: Session, *, teacher_id: uuid.UUID) -> tuple[list[slots.Window], list[str], str]:
    return (
        teachers.windows(session, teacher_id),
        teachers.checklist(session, teacher_id),
        teachers.get_teacher(session, teacher_id).time_zone,
    )


def _rows(windows: list[slots.Window]) -> list[dict[str, Any]]:
    rows = [{"weekday": w.weekday, "start": hhmm(w.start_minute), "end": hhmm(w.end_minute % 1440)} for w in windows]
    return rows + [{"weekday": "", "start": "", "end": ""} for _ in range(BLANK_ROWS)]


@router.get("/teacher/hours")
async def hours_page(request: Request, user: Viewer) -> Response:
    me = require(user, Role.TEACHER)
    windows, gaps, zone = await get_services(request).tx(_hours, teacher_id=me.id)
    return render(
        request,
        "teacher_hours.html",
        rows=_rows(windows),
        weekdays=WEEKDAYS,
        checklist=checklist_view(gaps),
        teacher_zone=zone,
    )


# A row's day may name several: the same window on each (overlaps on one day are merged).
DAY_GROUPS = {"all": range(7), "weekdays": range(5)}
MORE_ROWS = 5  # empty rows added by "More empty rows"


def windows_from(form: dict[str, Any]) -> list[slots.Window]:
    """The form's rows (weekday_N, start_N, end_N, remove_N), blank and removed ones skipped;
    an end of 00:00 is midnight at the end of the day; a day of "all" or "weekdays" (or the row
    whose "Copy to every day" is ticked: copy_N) puts the window on each of those days.
    ValidationError names a bad row."""
    out = []
    count = small_number(form.get("rows"), digits=3) or 0
    for i in range(min(count, 100)):
        weekday, start, end = form.get(f"weekday_{i}", ""), form.get(f"start_{i}", ""), form.get(f"end_{i}", "")
        if form.get(f"remove_{i}") or not (weekday or start or end):
            continue
        end = "24:00" if end in ("00:00", "0:00") else end
        group = DAY_GROUPS["all"] if form.get(f"copy_{i}") else DAY_GROUPS.get(weekday)
        day = 0 if group is not None else small_number(weekday, digits=1)
        w = WindowIn(weekday=-1 if day is None else day, start=start[:5], end=end[:5])
        for d in group if group is not None else (w.weekday,):
            out.append(slots.Window(d, minutes(w.start), minutes(w.end)))
    return out


def rows_as_posted(form: dict[str, Any], *, more: int) -> list[dict[str, Any]]:
    """The form's rows as typed (to show again without saving), and `more` empty ones."""
    count = min(small_number(form.get("rows"), digits=3) or 0, 100)
    rows = []
    for i in range(count):
        row = {k: form.get(f"{k}_{i}", "") for k in ("weekday", "start", "end")}
        if form.get(f"remove_{i}") or not any(row.values()):
            continue
        day = small_number(row["weekday"], digits=1)
        rows.append({**row, "weekday": day if day is not None else row["weekday"]})
    return rows + [{"weekday": "", "start": "", "end": ""} for _ in range(more)]


@router.post("/teacher/hours")
async def save_hours(request: Request, user: Viewer) -> Response:
    me = require(user, Role.TEACHER)
    form = await read_form(request)
    svc = get_services(request)
    if form.get("action") == "more":  # more empty rows, nothing saved yet
        windows, gaps, zone = await svc.tx(_hours, teacher_id=me.id)
        rows = rows_as_posted(form, more=MORE_ROWS)
        return render(
            request,
            "teacher_hours.html",
            rows=rows,
            weekdays=WEEKDAYS,
            checklist=checklist_view(gaps),
            teacher_zone=zone,
            unsaved=True,
        )
    try:
        new = windows_from(form)
        await svc.tx(teachers.set_windows, teacher_id=me.id, new=new)
    except ValidationError as exc:
        windows, gaps, zone = await svc.tx(_hours, teacher_id=me.id)
        errors = ["Each window needs a weekday, a start and an end after the start (for example 09:00 to 12:00)."]
        errors += [e["msg"].removeprefix("Value error, ") for e in exc.errors()][:1]
        return render(
            request,
            "teacher_hours.html",
            status_code=422,
            errors=errors,
            rows=_rows(windows),
            weekdays=WEEKDAYS,
            checklist=checklist_view(gaps),
            teacher_zone=zone,
        )
    return redirect(request, "/teacher/hours", notice="Hours saved." if new else "Hours saved: none at the moment.")


# -- time off --------------------------------------------------------------------------


def _time_off(
    session: Session, *, teacher_id: uuid.UUID, now: datetime
) -> tuple[list[dict[str, Any]], list[str]]:
    return (
        reporting.time_off_with_sessions(session, teacher_id=teacher_id, now=now),
        teachers.checklist(session, teacher_id),
    )


def local_instant(text: str, zone: str) -> datetime | str:
    """ "2026-12-24T09:00" on the wall clock of `zone` -> a UTC instant; the text back if not a time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment.astimezone(UTC)


async def _time_off_page(request: Request, me: AuthUser, *, status_code: int = 200, **extra: Any) -> Response:
    items, gaps = await get_services(request).tx(_time_off, teacher_id=me.id, now=utc_now())
    extra.setdefault("form", {})
    return render(
        request, "teacher_time_off.html", status_code=status_code, items=items, checklist=checklist_view(gaps), **extra
    )


@router.get("/teacher/time-off")
async def time_off_page(request: Request, user: Viewer) -> Response:
    me = require(user, Role.TEACHER)
    return await _time_off_page(request, me)


@router.post("/teacher/time-off")
async def add_time_off(request: Request, user: Viewer) -> Response:
    me = require(user, Role.TEACHER)
    form = await read_form(request)
    zone = viewer_zone(request, me)
    try:
        body = TimeOffIn(
            starts_at=local_instant(form.get("starts_at", ""), zone),
            ends_at=local_instant(form.get("ends_at", ""), zone),
            note=form.get("note", ""),
        )
        added = await get_services(request).tx(
            reporting.add_time_off,
            teacher_id=me.id,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            note=body.note,
            now=utc_now(),
        )
    except (ValidationError, AppError) as exc:
        errors = (
            ["Give a start and an end (a date and a time), the end after the start; a note of at most 200 characters."]
            if isinstance(exc, ValidationError)
            else [exc.message]
        )
        return await _time_off_page(request, me, status_code=422, errors=errors, form=form)
    clashes = len(added["affected_sessions"])
    if clashes:
        return redirect(
            request,
            "/teacher/time-off",
            error=f"Time off added. {clashes} paid session{'s are' if clashes > 1 else ' is'} still booked "
            "inside it: cancel or move them (listed below).",
        )
    return redirect(request, "/teacher/time-off", notice="Time off added.")


@router.post("/teacher/time-off/{time_off_id}/delete")
async def delete_time_off(time_off_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    me = require(user, Role.TEACHER)
    await read_form(request)
    try:
        await get_services(request).tx(teachers.delete_time_off, teacher_id=me.id, time_off_id=time_off_id)
    except AppError as exc:
        return redirect(request, "/teacher/time-off", error=exc.message)
    return redirect(request, "/teacher/time-off", notice="Time off removed.")
