"""The operator console under /admin: today at a glance, bookings (search, one booking, its
actions); reconciliation, users and reports are `admin_office_pages`. Admins only (403
otherwise); every action is a form with the CSRF token; nothing needs JavaScript. The pages call
the same use cases as the API."""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tutorbook.admin import console
from tutorbook.admin import search as admin_search
from tutorbook.api.deps import get_services
from tutorbook.bookings import cancelling, lookup, queries
from tutorbook.bookings.lifecycle import STATUS_NAMES, Status
from tutorbook.bookings.models import Booking
from tutorbook.bookings.policy import RefundChoice
from tutorbook.bookings.schemas import SessionOut, session_out, session_row_out
from tutorbook.clock import utc_now
from tutorbook.errors import AppError, NotFound, Unprocessable
from tutorbook.flows import booking as flows
from tutorbook.flows import followups
from tutorbook.flows.services import Services
from tutorbook.identity import AuthUser, Role
from tutorbook.payments import gateway as gw
from tutorbook.web import formatting as fmt
from tutorbook.web.core import (
    csv_response,
    page_router,
    page_user,
    read_form,
    redirect,
    render,
    require,
    viewer_zone,
)

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]


def admin(user: AuthUser | None) -> AuthUser:
    return require(user, Role.ADMIN)


# -- today ------------------------------------------------------------------------------


@router.get("/admin")
async def today(request: Request, user: Viewer) -> Response:
    me = admin(user)
    svc = get_services(request)
    view = await svc.tx(console.glance, now=utc_now(), zone=viewer_zone(request, me), settings=svc.settings)
    return render(
        request,
        "admin/index.html",
        section="/admin",
        g=view,
        statuses=[s.label for s in Status],
        mail_days=console.MAIL_TROUBLE_DAYS,
    )


# -- bookings ---------------------------------------------------------------------------


class SearchForm:
    """The console's booking search as the form sends it (the page and its CSV share it)."""

    def __init__(
        self,
        status: str | None = Query(default=None, max_length=255),
        teacher: str | None = Query(default=None, max_length=255),
        parent: str | None = Query(default=None, max_length=255),
        child: str | None = Query(default=None, max_length=255),
        date_from: str | None = Query(default=None, alias="from", max_length=20),
        date_to: str | None = Query(default=None, alias="to", max_length=20),
        q: str | None = Query(default=None, max_length=255),
    ):
        self.form = {
            "status": status,
            "teacher": teacher,
            "parent": parent,
            "child": child,
            "from": date_from,
            "to": date_to,
            "q": q,
        }

    def search(self, session: Session, *, zone: str) -> queries.Search:
        f = self.form
        return admin_search.parse_search(
            session,
            zone=zone,
            status=f["status"],
            teacher=f["teacher"],
            parent=f["parent"],
            child=f["child"],
            date_from=f["from"],
            date_to=f["to"],
            q=f["q"],
        )

    @property
    def query(self) -> dict[str, str]:
        return {k: v for k, v in self.form.items() if v}


Search = Annotated[SearchForm, Depends()]
CSV_MAX_ROWS = 10_000


@router.get("/admin/bookings")
async def bookings(
    request: Request,
    user: Viewer,
    search: Search,
    after: str | None = Query(default=None, max_length=100),
) -> Response:
    me = admin(user)
    # The viewer's zone, as on every page (the dates searched are days on the admin's clock).
    zone = viewer_zone(request, me)

    def find(session: Session) -> tuple[list[tuple[SessionOut, str]], str | None]:
        rows, nxt = admin_search.search_page(session, search=search.search(session, zone=zone), after=after)
        return [(session_row_out(row, SessionOut), row["parent_email"]) for row in rows], nxt

    rows: list[tuple[SessionOut, str]] = []
    error: str | None = None
    nxt: str | None = None
    try:
        rows, nxt = await get_services(request).tx(find)
    except Unprocessable as exc:
        error = exc.message
    query = search.query
    return render(
        request,
        "admin/bookings.html",
        status_code=422 if error else 200,
        section="/admin/bookings",
        form=search.form,
        rows=rows,
        query=query,
        csv_max=CSV_MAX_ROWS,
        next_query={**query, "after": nxt} if nxt else None,
        first_query=query if after else None,
        error=error,
        statuses=STATUS_NAMES,
    )


SEARCH_CSV_COLUMNS = [
    "id", "starts_at", "ends_at", "status", "subject", "teacher", "child", "parent_email", "price", "currency",
    "refunded", "stripe_session_id", "stripe_payment_intent_id", "cancellation_reason",
]  # fmt: skip


@router.get("/admin/bookings.csv")
async def bookings_csv(request: Request, user: Viewer, search: Search) -> Response:
    """Every booking the search finds (newest start first, at most CSV_MAX_ROWS) as CSV: times in
    UTC, amounts in major units."""
    me = admin(user)
    zone = viewer_zone(request, me)

    def find(session: Session) -> list[tuple[SessionOut, sa.RowMapping]]:
        where = search.search(session, zone=zone)
        out: list[tuple[SessionOut, sa.RowMapping]] = []
        after = None
        while len(out) < CSV_MAX_ROWS:
            rows, after = admin_search.search_page(
                session, search=where, after=after, limit=min(1000, CSV_MAX_ROWS - len(out))
            )
            out += [(session_row_out(row, SessionOut), row) for row in rows]
            if after is None:
                break
        return out

    try:
        found = await get_services(request).tx(find)
    except Unprocessable:
        return await bookings(request, user, search)  # the page says what is wrong
    rows = [
        {
            "id": b.id,
            "starts_at": b.starts_at,
            "ends_at": b.ends_at,
            "status": b.status_name,
            "subject": b.subject,
            "teacher": b.teacher_name,
            "child": b.student_name,
            "parent_email": row["parent_email"],
            "price": fmt.major(b.price_amount, b.currency),
            "currency": b.currency.upper(),
            "refunded": fmt.major(b.refunded_amount, b.currency),
            "stripe_session_id": b.stripe_session_id,
            "stripe_payment_intent_id": b.stripe_payment_intent_id,
            "cancellation_reason": b.cancellation_reason,
        }
        for b, row in found
    ]
    return csv_response(console.to_csv(rows, SEARCH_CSV_COLUMNS), name="bookings")


async def _stripe_state(svc: Services, booking: Booking) -> dict[str, Any]:
    """The checkout as Stripe sees it now (or why it could not be asked)."""
    if not booking.checkout_id:
        return {"error": "no checkout"}
    try:
        checkout = await svc.gateway.retrieve_checkout(booking.checkout_id)
    except gw.CheckoutNotFound:
        return {"error": "Stripe does not know this checkout"}
    except gw.GatewayError:
        return {"error": "Stripe could not be reached; reload to try again"}
    return {
        "status": checkout.status,
        "payment_status": checkout.payment_status,
        "payment_intent": checkout.payment_intent,
        "amount_total": checkout.amount_total,
        "currency": checkout.currency,
    }


@router.get("/admin/bookings/{booking_id}")
async def booking(booking_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    admin(user)
    svc = get_services(request)

    def load(session: Session) -> tuple[console.BookingView, SessionOut, dict[str, int], int]:
        view = console.booking_view(session, booking_id=booking_id)
        if view is None:
            raise NotFound("Session not found")
        b = view.booking
        names = ((view.teacher.full_name if view.teacher else ""), (view.student.full_name if view.student else ""))
        now = utc_now()
        choices = {
            c.value: cancelling.admin_refund(b, choice=c, settings=svc.settings, now=now) for c in RefundChoice
        }
        return view, session_out(b, *names), choices, cancelling.refundable(session, booking=b)

    view, out, choices, refundable = await svc.tx(load)
    stripe = await _stripe_state(svc, view.booking)
    return render(
        request,
        "admin/booking.html",
        section="/admin/bookings",
        v=view,
        b=out,
        stripe=stripe,
        choices=choices,
        refundable=refundable,
        refund_key=secrets.token_urlsafe(16),  # one refund per rendered form (a resubmission is not another)
        dev_mailbox=not svc.settings.is_production,
    )


@router.post("/admin/bookings/{booking_id}/cancel")
async def cancel(booking_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    me = admin(user)
    form = await read_form(request)
    back = f"/admin/bookings/{booking_id}"
    choice = form.get("refund", "")
    if choice not in {c.value for c in RefundChoice}:
        return redirect(request, back, error="Choose the refund: full, policy or none.")
    try:
        done = await flows.cancel_as_admin(
            get_services(request),
            admin=me,
            booking_id=booking_id,
            refund=RefundChoice(choice),
            note=form.get("reason", ""),
        )
    except AppError as exc:
        return redirect(request, back, error=_message(exc))
    notice = "Booking cancelled."
    if done.refunded_amount:
        notice += f" Refunded: {fmt.money(done.refunded_amount, done.currency)}."
    return redirect(request, back, notice=notice)


@router.post("/admin/bookings/{booking_id}/refund")
async def refund(booking_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    """Give back an amount of a paid booking without cancelling it."""
    me = admin(user)
    form = await read_form(request)
    back = f"/admin/bookings/{booking_id}"
    svc = get_services(request)
    booking = await svc.tx(lookup.must_get, booking_id=booking_id)
    amount = fmt.minor(form.get("amount"), booking.currency)
    if amount is None:
        return redirect(request, back, error="Give the amount to refund, e.g. 12.50.")
    try:
        done, new = await flows.refund_as_admin(
            svc, admin=me, booking_id=booking_id, amount=amount, note=form.get("reason", ""), key=form.get("key", "")
        )
    except AppError as exc:
        left = exc.data[0].get("left") if isinstance(exc.data, list) and exc.data else None
        if left is not None:
            return redirect(request, back, error=f"At most {fmt.money(left, booking.currency)} is left to refund.")
        return redirect(request, back, error=_message(exc))
    if not new:
        return redirect(request, back, notice="This refund was asked for already; nothing more was refunded.")
    return redirect(request, back, notice=f"Refund of {fmt.money(amount, done.currency)} asked of Stripe.")


@router.post("/admin/bookings/{booking_id}/meeting-link")
async def new_link(booking_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    me = admin(user)
    form = await read_form(request)
    back = f"/admin/bookings/{booking_id}"
    note = " ".join(form.get("reason", "").split())[:500] or None
    svc = get_services(request)
    try:
        outcome = await run_in_threadpool(
            followups.regenerate_link, svc, actor=me.actor, booking_id=booking_id, note=note, now=utc_now()
        )
    except AppError as exc:
        return redirect(request, back, error=exc.message)
    if outcome in ("created", "fell_back"):
        return redirect(request, back, notice="A new meeting link was made.")
    return redirect(request, back, error=f"No new link yet ({outcome}); the meeting-links job will try again.")


@router.post("/admin/bookings/{booking_id}/resend-confirmation")
async def resend_confirmation(booking_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    me = admin(user)
    form = await read_form(request)
    back = f"/admin/bookings/{booking_id}"
    try:
        written = await get_services(request).tx(
            cancelling.resend_confirmation,
            admin=me,
            booking_id=booking_id,
            to=form.get("to", ""),
            note=form.get("reason"),
            now=utc_now(),
        )
    except AppError as exc:
        return redirect(request, back, error=_message(exc))
    if not written:
        return redirect(request, back, error="Nothing was sent: the recipient's account is gone.")
    noun = "email is" if written == 1 else "emails are"
    return redirect(request, back, notice=f"The confirmation was queued again: {written} {noun} on the way.")


def _message(exc: AppError) -> str:
    if isinstance(exc, Unprocessable) and isinstance(exc.data, list) and exc.data:
        return f"{exc.message}: {exc.data[0].get('message')}."
    return exc.message
