"""Weekly lessons in the browser (issue #29): the booking page's "Every week" leads here, to the
weeks previewed (each free or why not, the free ones ticked), then the series booked and the first
lesson paid at Checkout; a series' page with each lesson's status and payment; the emailed link
that pays one lesson whose card charge failed."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from tutorbook.api.deps import get_services
from tutorbook.bookings import crediting
from tutorbook.clock import utc_now
from tutorbook.errors import AppError
from tutorbook.flows import series as flows
from tutorbook.identity import AuthUser, Role
from tutorbook.series.schemas import PreviewOut, SeriesIn, SeriesPreviewIn
from tutorbook.series.weeks import MAX_WEEKS, MIN_WEEKS
from tutorbook.validation import small_number
from tutorbook.web.core import page_router, page_user, read_form, redirect, render, require
from tutorbook.web.teacher_pages import booking_problems

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]
FIELDS = ("teacher_id", "student_id", "subject", "starts_at", "duration_minutes", "weeks")
PAY_WITH = ("card", "credit")
REASONS = {
    "busy": "already booked",
    "time_off": "the teacher is away",
    "outside_hours": "outside the teacher's hours",
    "calendar": "the teacher's calendar is busy",
    "too_far": "more than a year ahead",
}


def preview_url(form: dict[str, str]) -> str:
    """The weeks' page for what the booking form asked (POST /book with "Every week")."""
    return "/series/new?" + urlencode({k: form.get(k, "") for k in FIELDS})


def _preview_in(values: dict[str, Any]) -> SeriesPreviewIn:
    return SeriesPreviewIn(
        teacher_id=values.get("teacher_id"),
        student_id=values.get("student_id"),
        subject=values.get("subject", ""),
        first_starts_at=values.get("starts_at"),
        duration_minutes=small_number(values.get("duration_minutes")),
        weeks=small_number(values.get("weeks")) or 0,
    )


async def _page(
    request: Request, parent: AuthUser, values: dict[str, Any], *, errors: list[str] | None = None, status: int = 200
) -> Response:
    shown: PreviewOut | None = None
    problems = list(errors or [])
    try:
        shown = await flows.preview(get_services(request), parent=parent, body=_preview_in(values))
    except (ValidationError, AppError) as exc:
        problems += booking_problems(exc)
        status = status if status != 200 else (exc.status_code if isinstance(exc, AppError) else 422)
    back = f"/teachers/{values.get('teacher_id', '')}"
    credits = 0
    if shown is not None:
        body = _preview_in(values)
        credits = await get_services(request).read(
            _credits, parent_id=parent.id, teacher_id=body.teacher_id, minutes=body.duration_minutes
        )
    return render(
        request,
        "series_new.html",
        status_code=status,
        shown=shown,
        values={k: values.get(k, "") for k in FIELDS},
        errors=problems,
        reasons=REASONS,
        back=back,
        charge_days=get_services(request).settings.series_charge_days_before,
        credits=credits,
        pay_with=values.get("pay_with") if values.get("pay_with") in PAY_WITH else "card",
        min_weeks=MIN_WEEKS,
        max_weeks=MAX_WEEKS,
    )


def _credits(session: Session, *, parent_id: uuid.UUID, teacher_id: uuid.UUID, minutes: int) -> int:
    return crediting.credits_for(session, parent_id=parent_id, teacher_id=teacher_id, minutes=minutes, now=utc_now())


@router.get("/series/new")
async def new_series(request: Request, user: Viewer) -> Response:
    """The weeks of a weekly booking, each free or why not; nothing is held yet."""
    parent = require(user, Role.PARENT)
    return await _page(request, parent, dict(request.query_params))


@router.post("/series")
async def create_series(request: Request, user: Viewer) -> Response:
    """Book the ticked weeks (all held or none) and go to pay the first lesson."""
    parent = require(user, Role.PARENT)
    form = await read_form(request)
    posted = await request.form()  # read (and its CSRF checked) by read_form; here its lists
    ticked = {d for d in posted.getlist("week") if isinstance(d, str)}
    try:
        # Every week the page showed is "offered"; those not ticked (and those not free) are skipped.
        skip = [date.fromisoformat(d) for d in posted.getlist("offered") if isinstance(d, str) and d not in ticked]
        pay_with = form.get("pay_with") if form.get("pay_with") in PAY_WITH else "card"
        body = SeriesIn(**_preview_in(form).model_dump(), pay_with=pay_with, skip=skip)
        made = await flows.create(get_services(request), parent=parent, body=body)
    except (ValidationError, AppError) as exc:
        status = exc.status_code if isinstance(exc, AppError) else 422
        return await _page(request, parent, form, errors=booking_problems(exc), status=status)
    except ValueError:  # a date that is no date
        return await _page(request, parent, form, errors=["Choose the weeks again."], status=422)
    if made.checkout_url is None:  # paid with credits: every lesson confirmed already
        return redirect(request, f"/series/{made.id}", notice="Booked: every lesson is paid with a credit.")
    return RedirectResponse(made.checkout_url, status_code=303)


@router.get("/series/{series_id}")
async def series_page(series_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    """A series: each lesson with its status and how it is paid."""
    viewer = require(user, Role.PARENT, Role.TEACHER, Role.ADMIN)
    shown = await flows.show(get_services(request), user=viewer, series_id=series_id)
    return render(request, "series.html", series=shown)


@router.get("/series/lessons/{booking_id}/pay")
async def pay_lesson(booking_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    """The emailed link: a checkout for this one lesson (its card charge failed), until its deadline."""
    parent = require(user, Role.PARENT)
    booking = await flows.pay_lesson(get_services(request), parent=parent, booking_id=booking_id)
    assert booking.checkout_url is not None
    return RedirectResponse(booking.checkout_url, status_code=303)
