"""A teacher's own calendars (busy times read from an iCal address) and why a time is not offered."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path, Query

from tutorbook.api.deps import AppSettings, ServicesDep, TeacherUser
from tutorbook.api.routing import Router
from tutorbook.bookings import busy
from tutorbook.calendars import service as calendars
from tutorbook.calendars.schemas import CalendarIn, CalendarOut
from tutorbook.clock import utc_now
from tutorbook.config import ALLOWED_DURATIONS
from tutorbook.errors import Unprocessable
from tutorbook.flows import calendars as calendar_flows
from tutorbook.schemas import CamelModel, Envelope, Reply, UtcDatetime, errors, ok
from tutorbook.validation import Instant

router = Router(prefix="/api/Teachers", tags=["Teachers"], responses=errors(400, 401, 403, 404, 422))

CalendarId = Annotated[uuid.UUID, Path(alias="calendarId")]


class HiddenOut(CamelModel):
    rule: str
    message: str
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = None
    calendar: str | None = None


class WhyNotOut(CamelModel):
    offered: bool
    reasons: list[HiddenOut]


@router.get("/me/calendars", response_model=Envelope[list[CalendarOut]])
async def my_calendars(user: TeacherUser, svc: ServicesDep, settings: AppSettings) -> Reply:
    """Your connected calendars: the address masked, the last sync, busy periods ahead, the last error."""
    stale = calendar_flows.stale_after(settings)
    return ok(await svc.read(calendars.listing, teacher_id=user.id, now=utc_now(), stale_after=stale))


@router.post("/me/calendars", response_model=Envelope[CalendarOut], status_code=201, responses=errors(409))
async def add_my_calendar(body: CalendarIn, user: TeacherUser, svc: ServicesDep) -> Reply:
    """Connect a calendar by its secret iCal address (https), or, where the site has Google set
    up, one of your Google calendars by its id (`googleCalendarId`: "primary" or its address; its
    free/busy is read, never the events). It is read at once (the answer
    carries `lastSyncedAt` or `lastError`), then every few minutes; its busy times block your free
    time. The address is never shown again in full."""
    added = await calendar_flows.connect(
        svc, teacher_id=user.id, url=body.ics_url, google_calendar_id=body.google_calendar_id, now=utc_now()
    )
    return ok(added, "Calendar connected" if added.last_error is None else "Calendar connected, but not readable yet")


@router.delete("/me/calendars/{calendarId}", response_model=Envelope[None])
async def delete_my_calendar(calendar_id: CalendarId, user: TeacherUser, svc: ServicesDep) -> Reply:
    """Disconnect a calendar; its busy times stop blocking at once."""
    await svc.tx(calendars.remove, teacher_id=user.id, calendar_id=calendar_id)
    return ok(None, "Calendar removed")


@router.get("/me/why-not", response_model=Envelope[WhyNotOut])
async def why_not_offered(
    user: TeacherUser,
    svc: ServicesDep,
    at: Instant = Query(description="the session's start"),
    duration_minutes: int = Query(default=60, alias="durationMinutes", description="the session's length"),
) -> Reply:
    """Why a session of yours at `at` is not offered to parents: every rule in the way (outside
    your hours, time off, a booking, a calendar's busy period with its time, never its title)."""
    if duration_minutes not in ALLOWED_DURATIONS:
        allowed = ", ".join(map(str, ALLOWED_DURATIONS))
        raise Unprocessable(
            f"durationMinutes is one of {allowed}", data=[{"field": "durationMinutes", "message": "not offered"}]
        )
    found = await svc.read(busy.why_not, teacher_id=user.id, start=at, minutes=duration_minutes, now=utc_now())
    return ok(WhyNotOut(offered=not found, reasons=[HiddenOut(**vars(h)) for h in found]))
