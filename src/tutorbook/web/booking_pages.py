"""My Bookings, cancelling (the refund shown first), a teacher's schedule, marking completed, .ics files."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.responses import Response

from tutorbook.api.deps import get_services
from tutorbook.bookings import repository as repo
from tutorbook.bookings import service as bookings
from tutorbook.bookings.lifecycle import Reason, Status
from tutorbook.bookings.schemas import SessionOut, session_out
from tutorbook.clock import utc_now
from tutorbook.errors import AppError, BadRequest
from tutorbook.flows import booking as flows
from tutorbook.identity import AuthUser, Role
from tutorbook.teachers import service as teachers
from tutorbook.web import formatting as fmt
from tutorbook.web import ics
from tutorbook.web.core import page_router, page_user, read_form, redirect, render, require
from tutorbook.web.teacher_setup_pages import checklist_view

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]
PAGE_SIZE = 20
CANCEL_REASON = {
    Role.PARENT: Reason.PARENT_CANCELLED,
    Role.TEACHER: Reason.TEACHER_CANCELLED,
    Role.ADMIN: Reason.ADMIN_CANCELLED,
}


def back_to(user: AuthUser) -> str:
    return {Role.TEACHER: "/schedule", Role.PARENT: "/my-bookings"}.get(Role(user.role), "/")


# -- lists -----------------------------------------------------------------------------


def _my_bookings(session, *, parent_id: uuid.UUID, page: int, now) -> tuple[list, list, int]:
    upcoming = repo.upcoming_for_parent(session, parent_id=parent_id, now=now) if page == 1 else []
    past, total = repo.past_for_parent(session, parent_id=parent_id, now=now, page=page, page_size=PAGE_SIZE)
    return [session_out(b, t, s) for b, t, s in upcoming], [session_out(b, t, s) for b, t, s in past], total


@router.get("/my-bookings")
async def my_bookings(request: Request, user: Viewer, page: int = Query(1, ge=1, le=100_000)):
    """Upcoming (soonest first), then Past (latest first, by pages)."""
    parent = require(user, Role.PARENT)
    now = utc_now()
    upcoming, past, total = await get_services(request).tx(_my_bookings, parent_id=parent.id, page=page, now=now)
    return render(
        request,
        "my_bookings.html",
        upcoming=upcoming,
        past=past,
        page=page,
        has_next=page * PAGE_SIZE < total,
        now=now,
    )


def _schedule(session, *, teacher_id: uuid.UUID, now) -> dict:
    """Upcoming and past paid sessions, and cancelled ones apart, with the parent's name and email."""
    out: dict[str, list] = {"upcoming": [], "past": [], "cancelled": []}
    for b, student, parent, email in repo.schedule_with_parents(session, teacher_id=teacher_id):
        out_b = session_out(b, None, student)
        item = {**dict(out_b), "status_name": out_b.status_name, "parent_name": parent, "parent_email": email}
        if b.status == Status.CANCELLED:
            out["cancelled"].append(item)
        elif b.ends_at > now and b.status == Status.CONFIRMED:
            out["upcoming"].append(item)
        else:
            out["past"].append(item)
    out["past"].reverse()  # latest first
    out["cancelled"].reverse()
    out["missing"] = teachers.checklist(session, teacher_id)
    return out


@router.get("/schedule")
async def schedule(request: Request, user: Viewer):
    teacher = require(user, Role.TEACHER)
    now = utc_now()
    view = await get_services(request).tx(_schedule, teacher_id=teacher.id, now=now)
    gaps = view.pop("missing")
    return render(request, "schedule.html", now=now, checklist=checklist_view(gaps), **view)


# -- calendar --------------------------------------------------------------------------


def _calendar(session, *, user: AuthUser, booking_id: uuid.UUID) -> tuple[SessionOut, str]:
    booking = bookings.get_for(session, user=user, booking_id=booking_id)
    if booking.status not in (Status.CONFIRMED, Status.COMPLETED):
        raise BadRequest("Only a paid session can be added to a calendar")
    return session_out(booking, *repo.names_for(session, booking)), booking.meeting_url or ""


@router.get("/bookings/{booking_id}/calendar.ics")
async def calendar_file(booking_id: uuid.UUID, request: Request, user: Viewer):
    """The session as an iCalendar event (UTC times: every calendar app shows them on its own clock)."""
    viewer = require(user, Role.PARENT, Role.TEACHER)
    svc = get_services(request)
    booking, meeting = await svc.tx(_calendar, user=viewer, booking_id=booking_id)
    body = ics.event(
        uid=f"{booking.id}@tutorbook",
        summary=f"{booking.subject} with {booking.teacher_name} for {booking.student_name}",
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        url=meeting,
        now=utc_now(),
        public_url=svc.settings.public_url,
    )
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="tutorbook-{booking.id}.ics"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/bookings/{booking_id}/complete")
async def complete(booking_id: uuid.UUID, request: Request, user: Viewer):
    teacher = require(user, Role.TEACHER, Role.ADMIN)
    await read_form(request)
    try:
        await get_services(request).tx(bookings.complete, user=teacher, booking_id=booking_id, now=utc_now())
    except AppError as exc:
        return redirect(request, back_to(teacher), error=exc.message)
    return redirect(request, back_to(teacher), notice="Session marked completed.")


# -- cancelling a booking --------------------------------------------------------------


def _cancel_preview(session, *, user: AuthUser, booking_id: uuid.UUID, settings) -> dict:
    booking = bookings.get_for(session, user=user, booking_id=booking_id)
    refund = bookings.refund_preview(booking, reason=CANCEL_REASON[Role(user.role)], settings=settings, now=utc_now())
    return {"booking": session_out(booking, *repo.names_for(session, booking)), "refund": refund}


@router.get("/bookings/{booking_id}/cancel")
async def cancel_page(booking_id: uuid.UUID, request: Request, user: Viewer):
    viewer = require(user)
    svc = get_services(request)
    view = await svc.tx(_cancel_preview, user=viewer, booking_id=booking_id, settings=svc.settings)
    return render(
        request,
        "cancel_booking.html",
        full_before=svc.settings.refund_full_before_hours,
        back=back_to(viewer),
        **view,
    )


@router.post("/bookings/{booking_id}/cancel")
async def cancel(booking_id: uuid.UUID, request: Request, user: Viewer):
    viewer = require(user)
    await read_form(request)
    try:
        booking = await flows.cancel_booking(get_services(request), user=viewer, booking_id=booking_id)
    except AppError as exc:
        return redirect(request, back_to(viewer), error=exc.message)
    notice = "Booking cancelled."
    if booking.refunded_amount:
        notice += f" Refunded: {fmt.money(booking.refunded_amount, booking.currency)}."
    return redirect(request, back_to(viewer), notice=notice)
