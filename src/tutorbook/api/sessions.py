"""/api/Sessions: book, confirm and cancel payment, My Bookings, cancel, reschedule, complete, schedule."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from sqlalchemy.orm import Session

from tutorbook import paging
from tutorbook.api.deps import (
    CurrentUser,
    ParentUser,
    ServicesDep,
    StaffOrParent,
    TeacherOrAdmin,
    TeacherUser,
)
from tutorbook.api.routing import Router
from tutorbook.bookings import cancelling, lists, lookup
from tutorbook.bookings import repository as repo
from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.lists import BookingRow
from tutorbook.bookings.models import Booking
from tutorbook.bookings.schemas import (
    BookIn,
    CancelIn,
    HistoryOut,
    RescheduleIn,
    SessionOut,
    SessionPage,
    session_out,
    session_page_json,
    session_row_out,
)
from tutorbook.clock import utc_now
from tutorbook.errors import Unprocessable
from tutorbook.flows import booking as flows
from tutorbook.flows.services import Services
from tutorbook.identity import AuthUser, Role
from tutorbook.schemas import Envelope, Reply, errors, ok
from tutorbook.validation import ExternalId, Instant, Line

router = Router(prefix="/api/Sessions", tags=["Sessions"], responses=errors(400, 401, 403, 404, 409, 422, 502, 504))

# Path parameters carry the frontend's names in the URL template and the OpenAPI document.
BookingId = Annotated[uuid.UUID, Path(alias="bookingId")]
CheckoutIdPath = Annotated[ExternalId, Path(alias="stripeSessionId", description="The Checkout Session id, `cs_…`")]


# Keyset paging (tutorbook.paging): a page's last row names where the next one starts.
AfterCursor = Annotated[
    Line | None,
    Query(max_length=100, description="the cursor the previous page gave (opaque): the page after it"),
]
BOTH_PAGE_AND_AFTER = {"field": "page", "message": "give page or after, not both"}
# A teacher's schedule used to come whole; most teachers' weeks (and months) still fit in a page.
SCHEDULE_PAGE_SIZE = 100
NEXT_LINK = {
    "description": 'when more sessions follow: `<url of the next page>; rel="next"` (RFC 8288)',
    "schema": {"type": "string"},
}


def _position(row: BookingRow) -> paging.Cursor:
    return row["starts_at"], row["id"]


async def _out(svc: Services, booking: Booking) -> SessionOut:
    teacher, student = await svc.tx(lists.names_for, booking=booking)
    return session_out(booking, teacher, student)


@router.post("/book", response_model=Envelope[SessionOut], status_code=201)
async def book(body: BookIn, user: ParentUser, svc: ServicesDep) -> Reply:
    """Hold the slot and open a Stripe Checkout Session; `data.checkoutUrl` is where to pay."""
    booked = await flows.book(svc, parent=user, body=body)
    out = session_out(booked.booking, booked.teacher_name, booked.student_name)
    return ok(out, "Booking created; complete the payment to confirm it")


@router.post("/confirm-payment/{stripeSessionId}", response_model=Envelope[SessionOut])
async def confirm_payment(checkout_id: CheckoutIdPath, user: ParentUser, svc: ServicesDep) -> Reply:
    """Called by the success page: re-reads the checkout from Stripe and confirms if paid."""
    booking = await flows.confirm_payment(svc, parent=user, checkout_id=checkout_id)
    message = "Payment confirmed" if booking.status == Status.CONFIRMED else "Waiting for the payment to be confirmed"
    return ok(await _out(svc, booking), message)


@router.post("/cancel-payment/{stripeSessionId}", response_model=Envelope[bool])
async def cancel_payment(
    checkout_id: CheckoutIdPath,
    user: ParentUser,
    svc: ServicesDep,
    booking_id: uuid.UUID | None = Query(default=None, alias="bookingId"),
) -> Reply:
    """Called by the cancel page: cancels the unpaid booking and expires its checkout.
    If Stripe handed back the literal {CHECKOUT_SESSION_ID}, pass `bookingId`."""
    await flows.cancel_payment(svc, parent=user, checkout_id=checkout_id, booking_id=booking_id)
    return ok(True, "Session booking cancelled successfully")


@router.get("/my-bookings", response_model=Envelope[SessionPage])
async def my_bookings(
    user: ParentUser,
    svc: ServicesDep,
    page: int = Query(default=1, ge=1, le=100_000, description="a page number (read by OFFSET); or use `after`"),
    page_size: int = Query(default=20, ge=1, le=100, alias="pageSize"),
    after: AfterCursor = None,
) -> Response:
    """Your bookings, newest first; never the ones cancelled before payment. Page by `page`
    numbers, or pass each page's `nextCursor` back as `after`: as fast at the last page as at the first."""
    cursor = paging.decode_cursor(after)
    if cursor is not None and page != 1:
        raise Unprocessable("Ask for a page by number or by cursor, not both", data=[BOTH_PAGE_AND_AFTER])
    body = await svc.read(_my_bookings_json, parent_id=user.id, page=page, page_size=page_size, cursor=cursor)
    return Response(body, media_type="application/json")


def _my_bookings_rows(
    session: Session, *, parent_id: uuid.UUID, page: int, page_size: int, cursor: paging.Cursor | None
) -> tuple[Sequence[BookingRow], dict[str, Any]]:
    """The page's BookingRows and the page's other fields (SessionPage's, but `items`)."""
    rows = lists.my_bookings(session, parent_id=parent_id, page_size=page_size, page=page, after=cursor)
    rows, nxt = paging.split_page(rows, page_size, _position)
    total, ahead = (
        (rows[0]["total"], rows[0]["ahead"])
        if rows
        else lists.count_my_bookings(session, parent_id=parent_id, through=cursor)
    )
    if cursor is not None:
        page = ahead // page_size + 1  # the page by number that holds this one's first row
    return rows, {"page": page, "page_size": page_size, "total": total, "next_cursor": nxt}


def _my_bookings_page(
    session: Session, *, parent_id: uuid.UUID, page: int, page_size: int, cursor: paging.Cursor | None
) -> SessionPage:
    """My Bookings' page as the model (what the route's answer is written as, without it)."""
    rows, fields = _my_bookings_rows(session, parent_id=parent_id, page=page, page_size=page_size, cursor=cursor)
    return SessionPage(items=[session_row_out(row, SessionOut) for row in rows], **fields)


def _my_bookings_json(
    session: Session, *, parent_id: uuid.UUID, page: int, page_size: int, cursor: paging.Cursor | None
) -> bytes:
    """My Bookings' answer, `Envelope[SessionPage]` written from the rows (session_page_json)."""
    rows, fields = _my_bookings_rows(session, parent_id=parent_id, page=page, page_size=page_size, cursor=cursor)
    return session_page_json(rows, **fields)


@router.get(
    "/teacher-schedule",
    response_model=Envelope[list[SessionOut]],
    responses={200: {"headers": {"Link": NEXT_LINK}}},
)
async def teacher_schedule(
    request: Request,
    response: Response,
    user: TeacherUser,
    svc: ServicesDep,
    from_: Instant | None = Query(default=None, alias="from"),
    to: Instant | None = Query(default=None),
    page_size: int = Query(default=SCHEDULE_PAGE_SIZE, ge=1, le=500, alias="pageSize"),
    after: AfterCursor = None,
) -> Reply:
    """Your paid sessions in time order, `pageSize` at a time. When more follow, the `Link`
    header's `rel="next"` URL asks for the next page (the same query with `after`, a cursor)."""
    cursor = paging.decode_cursor(after)
    items, nxt = await svc.read(
        _schedule_page, teacher_id=user.id, start=from_, end=to, page_size=page_size, cursor=cursor
    )
    if nxt is not None:
        url = request.url.include_query_params(after=nxt)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return ok(items)


def _schedule_page(
    session: Session,
    *,
    teacher_id: uuid.UUID,
    start: datetime | None,
    end: datetime | None,
    page_size: int,
    cursor: paging.Cursor | None,
) -> tuple[list[SessionOut], str | None]:
    rows = lists.teacher_schedule(session, teacher_id=teacher_id, start=start, end=end, limit=page_size, after=cursor)
    rows, nxt = paging.split_page(rows, page_size, _position)
    return [session_row_out(row, SessionOut) for row in rows], nxt


@router.get("/{bookingId}", response_model=Envelope[SessionOut], name="get")
async def get_session(booking_id: BookingId, user: CurrentUser, svc: ServicesDep) -> Reply:
    """One booking: its parent, its teacher, or an admin."""
    return ok(await svc.read(_booking_out, user=user, booking_id=booking_id))


def _booking_out(session: Session, *, user: AuthUser, booking_id: uuid.UUID) -> SessionOut:
    booking = lookup.get_for(session, user=user, booking_id=booking_id)
    return session_out(booking, *lists.names_for(session, booking))


@router.get("/{bookingId}/history", response_model=Envelope[list[HistoryOut]], name="history")
async def get_history(booking_id: BookingId, user: CurrentUser, svc: ServicesDep) -> Reply:
    """Every status change of one booking, oldest first."""
    return ok(await svc.read(_history, user=user, booking_id=booking_id))


def _history(session: Session, *, user: AuthUser, booking_id: uuid.UUID) -> list[HistoryOut]:
    lookup.get_for(session, user=user, booking_id=booking_id)
    return [HistoryOut.model_validate(h) for h in repo.history(session, booking_id)]


@router.post("/{bookingId}/cancel", response_model=Envelope[SessionOut])
async def cancel(booking_id: BookingId, user: StaffOrParent, svc: ServicesDep, body: CancelIn | None = None) -> Reply:
    """Cancel a booking; a Confirmed one is refunded per the policy (a teacher's or admin's: in
    full, to the parent). A teacher may give the parent a `reason` (optional body)."""
    note = body.reason if body else None
    if note and note.strip() and user.role != Role.TEACHER:
        raise Unprocessable(
            "Only a teacher gives a reason here (an admin cancels on the console)",
            data=[{"field": "reason", "message": "for teachers only"}],
        )
    booking = await flows.cancel_booking(svc, user=user, booking_id=booking_id, note=note)
    return ok(await _out(svc, booking), "Booking cancelled")


@router.post("/{bookingId}/complete", response_model=Envelope[SessionOut])
async def complete(booking_id: BookingId, user: TeacherOrAdmin, svc: ServicesDep) -> Reply:
    """Mark a Confirmed session completed (once it has started)."""
    return ok(await svc.tx(_complete, user=user, booking_id=booking_id), "Session completed")


def _complete(session: Session, *, user: AuthUser, booking_id: uuid.UUID) -> SessionOut:
    booking = cancelling.complete(session, user=user, booking_id=booking_id, now=utc_now())
    return session_out(booking, *lists.names_for(session, booking))


@router.post("/{bookingId}/reschedule", response_model=Envelope[SessionOut])
async def reschedule(booking_id: BookingId, body: RescheduleIn, user: CurrentUser, svc: ServicesDep) -> Reply:
    """Move a Confirmed session to another free time of the same teacher, same length and payment.
    The parent may until the teacher's reschedule deadline and up to their maximum number of
    changes (`data.reason` says which rule refused: `deadline_passed`, `limit_reached`, ...); the
    teacher or an admin any time before the start. 409 when the time is taken, 422 when the
    teacher does not offer it."""
    booking = await flows.reschedule(svc, user=user, booking_id=booking_id, starts_at=body.starts_at)
    return ok(await _out(svc, booking), "Session moved")
