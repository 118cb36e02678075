"""My Bookings, cancelling (the refund shown first), a teacher's schedule and terms, marking
completed, .ics files. Changing the time of a paid session is `reschedule_pages`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.responses import Response

from tutorbook import paging
from tutorbook.api.deps import get_services
from tutorbook.bookings import busy, cancelling, lists, lookup, rescheduling, reserving
from tutorbook.bookings.lifecycle import NoReschedule, Status
from tutorbook.bookings.models import Booking
from tutorbook.bookings.schemas import session_out
from tutorbook.clock import utc_now
from tutorbook.config import Settings
from tutorbook.errors import AppError, BadRequest
from tutorbook.flows import booking as flows
from tutorbook.flows import mail_content
from tutorbook.identity import AuthUser, Role
from tutorbook.series import service as series
from tutorbook.teachers import service as teachers
from tutorbook.teachers.policy import Terms
from tutorbook.teachers.schemas import PolicyIn
from tutorbook.validation import small_number
from tutorbook.web import formatting as fmt
from tutorbook.web.core import (
    page_router,
    page_user,
    read_form,
    redirect,
    render,
    require,
)
from tutorbook.web.teacher_setup_pages import checklist_view

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]
PAGE_SIZE = 20


def back_to(user: AuthUser, booking_id: uuid.UUID | None = None) -> str:
    """Where a page about a booking returns to: the viewer's list (an admin: the booking's console page)."""
    if user.role == Role.ADMIN and booking_id is not None:
        return f"/admin/bookings/{booking_id}"
    return {Role.TEACHER: "/schedule", Role.PARENT: "/my-bookings"}.get(user.role, "/")


# -- lists -----------------------------------------------------------------------------


def why_not_text(why: NoReschedule | None, terms: Terms) -> str | None:
    """Why "Change time" is missing, in words (None: it is there, or nothing worth saying)."""
    if why == NoReschedule.DEADLINE_PASSED:
        return (
            f"The time can no longer be changed here: the teacher's terms allow it until "
            f"{terms.reschedule_deadline_hours} hours before the start. Ask the teacher, who still can."
        )
    if why == NoReschedule.LIMIT_REACHED:
        times = "once" if terms.max_reschedules == 1 else f"{terms.max_reschedules} times"
        if terms.max_reschedules == 0:
            return "The teacher's terms do not allow changing the time of this booking."
        return f"The time has been changed {times} already, the most the teacher's terms allow."
    return None


def _moves(
    session: Session, bookings_: list[Booking], *, user: AuthUser, settings: Settings, now: datetime
) -> dict[str, Any]:
    """Per booking id: whether its time can be changed, why not, and its terms in a sentence."""
    out = {}
    for b in bookings_:
        terms = reserving.terms_of(b, settings=settings)
        why = rescheduling.why_not_reschedule(b, user=user, settings=settings, now=now)
        out[str(b.id)] = {"can": why is None, "why": why_not_text(why, terms), "terms": terms.sentence()}
    return out


def _position(row: Sequence[Any]) -> paging.Cursor:
    return row[0].starts_at, row[0].id


def _past_page(
    session: Session, *, parent_id: uuid.UUID, now: datetime, after: paging.Cursor | None, before: paging.Cursor | None
) -> tuple[list[Any], str | None, str | None]:
    """A page of Past bookings (latest first, keyset) and the cursors of the older and the newer
    page (None: there is none; the newest page is the one without a cursor)."""
    if before is not None:
        rows = lists.past_for_parent(session, parent_id=parent_id, now=now, limit=PAGE_SIZE, before=before)
        if len(rows) > PAGE_SIZE:
            page = list(reversed(rows[:PAGE_SIZE]))
            return page, paging.encode_cursor(*_position(page[-1])), paging.encode_cursor(*_position(page[0]))
        after = None  # nothing newer than these: the newest page, which may hold more of them
    rows = lists.past_for_parent(session, parent_id=parent_id, now=now, limit=PAGE_SIZE, after=after)
    page, older = paging.split_page(rows, PAGE_SIZE, _position)
    newer = paging.encode_cursor(*_position(page[0])) if after is not None and page else None
    return page, older, newer


def _my_bookings(
    session: Session,
    *,
    parent: AuthUser,
    after: paging.Cursor | None,
    before: paging.Cursor | None,
    settings: Settings,
    now: datetime,
) -> dict[str, Any]:
    """Upcoming (soonest first, on the newest page only) and a page of past bookings with the
    cursors of the pages around it, and for the upcoming ones whether their time can be changed."""
    past, older, newer = _past_page(session, parent_id=parent.id, now=now, after=after, before=before)
    first = after is None and (before is None or newer is None)
    upcoming = lists.upcoming_for_parent(session, parent_id=parent.id, now=now) if first else []
    moves = _moves(session, [b for b, _, _ in upcoming], user=parent, settings=settings, now=now)
    weekly = series.marks(session, booking_ids=[b.id for b, _, _ in [*upcoming, *past]])
    upcoming, more = _one_per_series(upcoming, weekly)
    return {
        "weekly": weekly,
        "more_weeks": more,
        "upcoming": [session_out(b, t, s) for b, t, s in upcoming],
        "past": [session_out(b, t, s) for b, t, s in past],
        "first": first,
        "older": older,
        "newer": newer,
        "moves": moves,
    }


def _one_per_series(rows: Sequence[Any], weekly: dict[str, dict[str, str]]) -> tuple[list[Any], dict[str, int]]:
    """My Bookings groups a series: its next lesson stands for it, with how many more follow (the
    series' page lists them all)."""
    kept: list[Any] = []
    more: dict[str, int] = {}
    seen: set[str] = set()
    for row in rows:
        mark = weekly.get(str(row[0].id))
        if mark is None:
            kept.append(row)
        elif mark["series"] in seen:
            more[mark["series"]] += 1
        else:
            seen.add(mark["series"])
            more[mark["series"]] = 0
            kept.append(row)
    return kept, more


@router.get("/my-bookings")
async def my_bookings(
    request: Request,
    user: Viewer,
    after: str | None = Query(None, max_length=100),
    before: str | None = Query(None, max_length=100),
) -> Response:
    """Upcoming (soonest first), then Past (latest first, by pages: "Older" and "Newer" carry the
    cursor of the row they continue from)."""
    parent = require(user, Role.PARENT)
    after_row, before_row = paging.decode_cursor(after), paging.decode_cursor(before, field="before")
    if after_row is not None and before_row is not None:
        raise BadRequest("This page link is broken.")
    svc, now = get_services(request), utc_now()
    view = await svc.tx(_my_bookings, parent=parent, after=after_row, before=before_row, settings=svc.settings, now=now)
    return render(request, "my_bookings.html", now=now, **view)


def _schedule(session: Session, *, teacher: AuthUser, settings: Settings, now: datetime) -> dict[str, Any]:
    """Upcoming and past paid sessions, and cancelled ones apart, with the parent's name and email,
    and for the upcoming ones whether their time can be changed."""
    out: dict[str, Any] = {"upcoming": [], "past": [], "cancelled": []}
    movable = []
    rows = lists.schedule_with_parents(session, teacher_id=teacher.id)
    for b, student, parent, email in rows:
        out_b = session_out(b, None, student)
        item = {**dict(out_b), "status_name": out_b.status_name, "parent_name": parent, "parent_email": email}
        if b.status == Status.CANCELLED:
            out["cancelled"].append(item)
        elif b.ends_at > now and b.status in (Status.CONFIRMED, Status.PENDING):  # Pending: a reserved weekly lesson
            out["upcoming"].append(item)
            if b.status == Status.CONFIRMED:
                movable.append(b)
        else:
            out["past"].append(item)
    out["past"].reverse()  # latest first
    out["cancelled"].reverse()
    out["weekly"] = series.marks(session, booking_ids=[b.id for b, _, _, _ in rows])
    clashes = busy.conflicting(session, teacher_id=teacher.id, booking_ids=[b.id for b in movable], now=now)
    for item in out["upcoming"]:
        item["calendar_busy"] = item["id"] in clashes
    out["moves"] = _moves(session, movable, user=teacher, settings=settings, now=now)
    out["missing"] = teachers.checklist(session, teacher.id)
    return out


@router.get("/schedule")
async def schedule(request: Request, user: Viewer) -> Response:
    teacher = require(user, Role.TEACHER)
    svc, now = get_services(request), utc_now()
    view = await svc.tx(_schedule, teacher=teacher, settings=svc.settings, now=now)
    gaps = view.pop("missing")
    return render(request, "schedule.html", now=now, checklist=checklist_view(gaps), **view)


# -- calendar --------------------------------------------------------------------------


def _calendar(session: Session, *, user: AuthUser, booking_id: uuid.UUID, settings: Settings, now: datetime) -> bytes:
    booking = lookup.get_for(session, user=user, booking_id=booking_id)
    if booking.status not in (Status.CONFIRMED, Status.COMPLETED):
        raise BadRequest("Only a paid session can be added to a calendar")
    return mail_content.download(
        session, booking=booking, attendee=user.email, attendee_name=user.full_name, settings=settings, now=now
    )


@router.get("/bookings/{booking_id}/calendar.ics")
async def calendar_file(booking_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    """The session as the same calendar entry as its emailed invite (same UID and SEQUENCE), so
    adding it never makes a second event and later updates replace it."""
    viewer = require(user, Role.PARENT, Role.TEACHER)
    svc = get_services(request)
    body = await svc.tx(_calendar, user=viewer, booking_id=booking_id, settings=svc.settings, now=utc_now())
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="tutorbook-{booking_id}.ics"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/bookings/{booking_id}/complete")
async def complete(booking_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    teacher = require(user, Role.TEACHER, Role.ADMIN)
    await read_form(request)
    try:
        await get_services(request).tx(cancelling.complete, user=teacher, booking_id=booking_id, now=utc_now())
    except AppError as exc:
        return redirect(request, back_to(teacher), error=exc.message)
    return redirect(request, back_to(teacher), notice="Session marked completed.")


# -- cancelling a booking --------------------------------------------------------------


def _cancel_preview(session: Session, *, user: AuthUser, booking_id: uuid.UUID, settings: Settings) -> dict[str, Any]:
    booking = lookup.get_for(session, user=user, booking_id=booking_id)
    refund = cancelling.refund_preview(booking, reason=cancelling.cancel_reason(user), settings=settings, now=utc_now())
    terms = reserving.terms_of(booking, settings=settings)  # the terms it was paid under
    return {
        "booking": session_out(booking, *lists.names_for(session, booking)),
        "refund": refund,
        "full_before": terms.full_refund_hours,
        "terms_sentence": terms.sentence(),
    }


@router.get("/bookings/{booking_id}/cancel")
async def cancel_page(booking_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    viewer = require(user)
    svc = get_services(request)
    view = await svc.tx(_cancel_preview, user=viewer, booking_id=booking_id, settings=svc.settings)
    return render(
        request,
        "cancel_booking.html",
        back=back_to(viewer),
        **view,
    )


@router.post("/bookings/{booking_id}/cancel")
async def cancel(booking_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    viewer = require(user)
    form = await read_form(request)
    # Only a teacher writes to the parent here (an admin's reason is asked on the console).
    note = form.get("note") if viewer.role == Role.TEACHER else None
    try:
        booking = await flows.cancel_booking(get_services(request), user=viewer, booking_id=booking_id, note=note)
    except AppError as exc:
        return redirect(request, back_to(viewer), error=_message(exc))
    notice = "Booking cancelled."
    if booking.refunded_amount:
        notice += f" Refunded: {fmt.money(booking.refunded_amount, booking.currency)}"
        notice += " (to the parent)." if viewer.role != Role.PARENT else "."
    return redirect(request, back_to(viewer), notice=notice)


def _message(exc: AppError) -> str:
    """The error with its first field's problem ("A reason is needed: at most 500 characters.")."""
    if isinstance(exc.data, list) and exc.data and isinstance(exc.data[0], dict) and exc.data[0].get("message"):
        return f"{exc.message}: {exc.data[0]['message']}."
    return exc.message


# -- a teacher's terms -------------------------------------------------------------------


@router.get("/teacher/policy")
async def policy_page(request: Request, user: Viewer) -> Response:
    teacher = require(user, Role.TEACHER)
    svc = get_services(request)
    current, is_default = await svc.tx(teachers.terms, teacher_id=teacher.id, platform=svc.terms)
    return render(request, "policy.html", terms=current, is_default=is_default, form=None)


@router.post("/teacher/policy")
async def set_policy(request: Request, user: Viewer) -> Response:
    teacher = require(user, Role.TEACHER)
    form = await read_form(request)
    svc = get_services(request)
    try:
        body = PolicyIn(**{name: small_number(form.get(name)) for name in PolicyIn.model_fields})
    except ValidationError as exc:
        current, is_default = await svc.tx(teachers.terms, teacher_id=teacher.id, platform=svc.terms)
        fields = sorted({str(e["loc"][0]) for e in exc.errors() if e.get("loc")})
        errors = [f"Check the {FIELD_LABELS.get(f, f)}." for f in fields]
        return render(
            request, "policy.html", status_code=422, terms=current, is_default=is_default, form=form, errors=errors
        )
    await svc.tx(teachers.set_terms, teacher_id=teacher.id, new=Terms(**body.model_dump()))
    return redirect(request, "/teacher/policy", notice="Terms saved. They apply to bookings paid from now on.")


FIELD_LABELS = {
    "full_refund_hours": "full-refund window",
    "late_refund_percent": "late refund percentage (0 to 100)",
    "reschedule_deadline_hours": "reschedule deadline",
    "max_reschedules": "maximum number of changes (0 to 20)",
}
