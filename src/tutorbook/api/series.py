"""/api/Series: weekly lessons (issue #29): preview the weeks, book the series, see it, cancel the
rest of it from a date, pay one lesson whose card charge failed."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path, Response

from tutorbook.api.deps import CurrentUser, ParentUser, ServicesDep, StaffOrParent
from tutorbook.api.routing import Router
from tutorbook.bookings import lists
from tutorbook.bookings.schemas import SessionOut, session_out
from tutorbook.clock import utc_now
from tutorbook.flows import series as flows
from tutorbook.schemas import Envelope, Reply, errors, ok
from tutorbook.series import invite
from tutorbook.series.schemas import CancelFromIn, PreviewOut, SeriesIn, SeriesOut, SeriesPreviewIn

router = Router(prefix="/api/Series", tags=["Series"], responses=errors(400, 401, 403, 404, 409, 422, 502, 504))

SeriesId = Annotated[uuid.UUID, Path(alias="seriesId")]
BookingId = Annotated[uuid.UUID, Path(alias="bookingId")]


@router.post("/preview", response_model=Envelope[PreviewOut])
async def preview(body: SeriesPreviewIn, user: ParentUser, svc: ServicesDep) -> Reply:
    """Each week's start and whether it is free, or why not (busy, time_off, outside_hours,
    calendar, too_far). Nothing is held."""
    return ok(await flows.preview(svc, parent=user, body=body))


@router.post("", response_model=Envelope[SeriesOut], status_code=201)
async def create(body: SeriesIn, user: ParentUser, svc: ServicesDep) -> Reply:
    """One booking per chosen week (the `skip` dates left out), all held or none (409 naming the
    weeks not free). By card: `data.checkoutUrl` pays the first lesson and saves the card; each
    later lesson is charged `TUTORBOOK_SERIES_CHARGE_DAYS_BEFORE` days before it."""
    out = await flows.create(svc, parent=user, body=body)
    return ok(out, "Series booked; pay the first lesson to confirm it")


@router.get("/{seriesId}", response_model=Envelope[SeriesOut])
async def show(series_id: SeriesId, user: CurrentUser, svc: ServicesDep) -> Reply:
    """The series with each occurrence's status and payment (its parent, its teacher, an admin)."""
    return ok(await flows.show(svc, user=user, series_id=series_id))


@router.post("/{seriesId}/cancel", response_model=Envelope[SeriesOut])
async def cancel_from(series_id: SeriesId, body: CancelFromIn, user: StaffOrParent, svc: ServicesDep) -> Reply:
    """Cancel the lesson on `from` (a date, the teacher's calendar) and every later one, each by
    its own terms: a paid lesson refunded as a lone booking is, a reserved one never charged."""
    out = await flows.cancel_from(svc, user=user, series_id=series_id, day=body.from_)
    return ok(out, "The rest of the series is cancelled")


@router.post("/lessons/{bookingId}/pay", response_model=Envelope[SessionOut])
async def pay_lesson(booking_id: BookingId, user: ParentUser, svc: ServicesDep) -> Reply:
    """The emailed link's call: a Checkout for one lesson whose card charge failed
    (`data.checkoutUrl`), until its deadline."""
    booking = await flows.pay_lesson(svc, parent=user, booking_id=booking_id)
    teacher, student = await svc.tx(lists.names_for, booking=booking)
    return ok(session_out(booking, teacher, student), "Pay this lesson to keep it")


@router.get(
    "/{seriesId}/calendar.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}},
)
async def calendar_file(series_id: SeriesId, user: CurrentUser, svc: ServicesDep) -> Response:
    """The series as one recurring calendar entry (RRULE, EXDATE for the weeks not held, an
    override for each moved one): the same UID and SEQUENCE as its emailed invite."""
    body = await svc.read(invite.download, user=user, series_id=series_id, settings=svc.settings, now=utc_now())
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="tutorbook-series-{series_id}.ics"',
            "Cache-Control": "no-store",
        },
    )
