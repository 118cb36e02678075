"""My Bookings, cancelling (the refund shown first), a teacher's schedule, marking completed."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request

from tutorbook.api.deps import get_services
from tutorbook.bookings import repository as repo
from tutorbook.bookings import service as bookings
from tutorbook.bookings.lifecycle import Reason
from tutorbook.bookings.schemas import SessionOut, session_out
from tutorbook.clock import utc_now
from tutorbook.errors import AppError
from tutorbook.flows import booking as flows
from tutorbook.identity import AuthUser, Role
from tutorbook.web import formatting as fmt
from tutorbook.web.core import page_router, page_user, read_form, redirect, render, require

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


def _my_bookings(session, *, parent_id: uuid.UUID, page: int) -> tuple[list[SessionOut], int]:
    rows, total = repo.my_bookings(session, parent_id=parent_id, page=page, page_size=PAGE_SIZE)
    return [session_out(b, t, s) for b, t, s in rows], total


@router.get("/my-bookings")
async def my_bookings(request: Request, user: Viewer, page: int = Query(1, ge=1, le=100_000)):
    parent = require(user, Role.PARENT)
    items, total = await get_services(request).tx(_my_bookings, parent_id=parent.id, page=page)
    return render(
        request,
        "my_bookings.html",
        bookings=items,
        page=page,
        has_next=page * PAGE_SIZE < total,
        now=utc_now(),
    )


def _schedule(session, *, teacher_id: uuid.UUID) -> list[SessionOut]:
    rows = repo.teacher_schedule(session, teacher_id=teacher_id, start=None, end=None)
    return [session_out(b, t, s) for b, t, s in rows]


@router.get("/schedule")
async def schedule(request: Request, user: Viewer):
    teacher = require(user, Role.TEACHER)
    items = await get_services(request).tx(_schedule, teacher_id=teacher.id)
    return render(request, "schedule.html", bookings=items, now=utc_now())


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
