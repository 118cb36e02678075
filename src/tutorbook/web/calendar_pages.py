"""A teacher's own calendars (connect by secret iCal address, see each one's sync, remove), and
"why is this time not offered?"."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from tutorbook.api.deps import get_services
from tutorbook.bookings import busy
from tutorbook.calendars import service as calendars
from tutorbook.calendars.schemas import CalendarIn
from tutorbook.clock import utc_now
from tutorbook.config import ALLOWED_DURATIONS
from tutorbook.errors import AppError
from tutorbook.flows import calendars as calendar_flows
from tutorbook.identity import AuthUser, Role
from tutorbook.validation import small_number
from tutorbook.web.core import page_router, page_user, read_form, redirect, render, require, viewer_zone
from tutorbook.web.teacher_setup_pages import local_instant

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]


async def _page(
    request: Request, me: AuthUser, *, status_code: int = 200, at: str = "", duration: int = 60, **extra: Any
) -> Response:
    svc, now = get_services(request), utc_now()
    items = await svc.read(
        calendars.listing, teacher_id=me.id, now=now, stale_after=calendar_flows.stale_after(svc.settings)
    )
    why = None
    if at:
        start = local_instant(at, viewer_zone(request, me))
        if isinstance(start, str):
            extra.setdefault("errors", ["Give a date and a time to ask about."])
        else:
            why = {"reasons": await svc.read(busy.why_not, teacher_id=me.id, start=start, minutes=duration, now=now)}
    extra.setdefault("form", {})
    return render(
        request,
        "teacher_calendars.html",
        status_code=status_code,
        items=items,
        interval_minutes=max(1, round(svc.settings.job_calendar_sync_interval_s / 60)),
        stale_hours=svc.settings.calendar_stale_hours,
        why=why,
        at=at,
        duration=duration,
        durations=ALLOWED_DURATIONS,
        google=calendar_flows.google_reader(svc) is not None,
        **extra,
    )


@router.get("/teacher/calendars")
async def calendars_page(
    request: Request, user: Viewer, at: str = Query("", max_length=40), duration: str = ""
) -> Response:
    me = require(user, Role.TEACHER)
    minutes = small_number(duration) or 60
    return await _page(request, me, at=at, duration=minutes if minutes in ALLOWED_DURATIONS else 60)


@router.post("/teacher/calendars")
async def add_calendar(request: Request, user: Viewer) -> Response:
    me = require(user, Role.TEACHER)
    form = await read_form(request)
    svc = get_services(request)
    try:
        if form.get("google_calendar_id") is not None:
            body = CalendarIn(google_calendar_id=form.get("google_calendar_id", ""))
        else:
            body = CalendarIn(ics_url=form.get("ics_url", ""))
        added = await calendar_flows.connect(
            svc, teacher_id=me.id, url=body.ics_url, google_calendar_id=body.google_calendar_id, now=utc_now()
        )
    except (ValidationError, AppError) as exc:
        errors = (
            ["Paste the calendar's secret iCal address (https://…)."]
            if isinstance(exc, ValidationError)
            else [exc.message]
        )
        return await _page(request, me, status_code=422, errors=errors, form={})
    if added.last_error:
        return redirect(
            request, "/teacher/calendars", error=f"Calendar connected, but it could not be read: {added.last_error}"
        )
    return redirect(
        request,
        "/teacher/calendars",
        notice=f"Calendar connected: {added.busy_ahead} busy time{'' if added.busy_ahead == 1 else 's'} ahead.",
    )


@router.post("/teacher/calendars/{calendar_id}/delete")
async def delete_calendar(calendar_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    me = require(user, Role.TEACHER)
    await read_form(request)
    try:
        await get_services(request).tx(calendars.remove, teacher_id=me.id, calendar_id=calendar_id)
    except AppError as exc:
        return redirect(request, "/teacher/calendars", error=exc.message)
    return redirect(request, "/teacher/calendars", notice="Calendar removed; its busy times no longer block yours.")
