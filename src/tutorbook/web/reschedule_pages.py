"""Changing the time of a paid session: the free starts of the teacher's week, the move."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Query, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.responses import Response

from tutorbook.api.deps import get_services
from tutorbook.bookings import lists, lookup, reporting, rescheduling, reserving
from tutorbook.bookings.schemas import RescheduleIn, session_out
from tutorbook.clock import iso_z, utc_now
from tutorbook.config import Settings
from tutorbook.errors import AppError
from tutorbook.flows import booking as flows
from tutorbook.identity import AuthUser, Role
from tutorbook.validation import small_number
from tutorbook.web import formatting as fmt
from tutorbook.web.booking_pages import Viewer, back_to, why_not_text
from tutorbook.web.core import page_router, read_form, redirect, render, require, viewer_locale, viewer_zone
from tutorbook.web.teacher_pages import MAX_WEEK, week_range

router = page_router()
# The reschedule page offers starts every half hour (the booking page offers every fitting start).
STEP = timedelta(minutes=30)


# -- changing the time of a paid session -------------------------------------------------


def fitting_starts(free: list[tuple[datetime, datetime]], *, length: timedelta, skip: datetime) -> list[datetime]:
    """Every half hour in the free intervals where a session of `length` fits (but `skip`, its own start)."""
    step = int(STEP.total_seconds())
    out = []
    for s, e in free:
        t = datetime.fromtimestamp(-(-int(s.timestamp()) // step) * step, UTC)
        while t + length <= e:
            if t != skip:
                out.append(t)
            t += STEP
    return out


def _by_day(starts: list[datetime], *, zone: str, loc: str) -> list[dict[str, Any]]:
    tz = ZoneInfo(zone)
    days: dict[Any, dict[str, Any]] = {}
    for t in starts:
        d = t.astimezone(tz).date()
        day = days.setdefault(d, {"label": fmt.long_day(t, zone, loc), "starts": []})
        day["starts"].append({"value": iso_z(t), "label": fmt.clock(t, zone, loc)})
    return list(days.values())


def _reschedule_view(
    session: Session,
    *,
    user: AuthUser,
    booking_id: uuid.UUID,
    week: int,
    zone: str,
    loc: str,
    settings: Settings,
    now: datetime,
) -> dict[str, Any]:
    booking = lookup.get_for(session, user=user, booking_id=booking_id)
    terms = reserving.terms_of(booking, settings=settings)
    why = rescheduling.why_not_reschedule(booking, user=user, settings=settings, now=now)
    start, end = week_range(zone, week, now)
    days: list[dict[str, Any]] = []
    if why is None:
        free = reporting.free_slots(
            session, teacher_id=booking.teacher_id, start=start, end=end, now=now, exclude=booking.id
        )
        length = booking.ends_at - booking.starts_at
        days = _by_day(fitting_starts(free, length=length, skip=booking.starts_at), zone=zone, loc=loc)
    return {
        "booking": session_out(booking, *lists.names_for(session, booking)),
        "terms": terms,
        "why": why.value if why else None,
        "why_text": why_not_text(why, terms) or "The time of this booking cannot be changed now.",
        "days": days,
        "week": week,
        "max_week": MAX_WEEK,
        "week_label": fmt.day(start, zone, loc),
        "minutes": int((booking.ends_at - booking.starts_at).total_seconds() // 60),
        "left": None if user.role != Role.PARENT else max(terms.max_reschedules - booking.reschedule_count, 0),
    }


async def _reschedule_page(
    request: Request,
    viewer: AuthUser,
    booking_id: uuid.UUID,
    week: int,
    *,
    status_code: int = 200,
    errors: Sequence[str] = (),
) -> Response:
    svc = get_services(request)
    view = await svc.tx(
        _reschedule_view,
        user=viewer,
        booking_id=booking_id,
        week=week,
        zone=viewer_zone(request, viewer),
        loc=viewer_locale(request),
        settings=svc.settings,
        now=utc_now(),
    )
    return render(
        request,
        "reschedule.html",
        status_code=status_code,
        back=back_to(viewer, booking_id),
        errors=list(errors),
        **view,
    )


@router.get("/bookings/{booking_id}/reschedule")
async def reschedule_page(
    booking_id: uuid.UUID, request: Request, user: Viewer, week: int = Query(0, ge=0, le=MAX_WEEK)
) -> Response:
    return await _reschedule_page(request, require(user), booking_id, week)


@router.post("/bookings/{booking_id}/reschedule")
async def reschedule(booking_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    viewer = require(user)
    form = await read_form(request)
    week = min(small_number(form.get("week")) or 0, MAX_WEEK)
    try:
        body = RescheduleIn(starts_at=form.get("starts_at"))
        booking = await flows.reschedule(
            get_services(request), user=viewer, booking_id=booking_id, starts_at=body.starts_at
        )
    except ValidationError:
        return await _reschedule_page(request, viewer, booking_id, week, status_code=422, errors=["Choose a new time."])
    except AppError as exc:
        if exc.status_code in (403, 404):
            raise
        return await _reschedule_page(
            request, viewer, booking_id, week, status_code=exc.status_code, errors=[exc.message]
        )
    when = fmt.when(booking.starts_at, booking.ends_at, viewer_zone(request, viewer), viewer_locale(request))
    return redirect(request, back_to(viewer, booking_id), notice=f"Session moved to {when}.")
