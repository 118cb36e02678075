"""Where Stripe Checkout sends the parent back: /payment/success and /payment/cancel."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from tutorbook.api.deps import get_services
from tutorbook.bookings import lists
from tutorbook.bookings.checkout import CHECKOUT_TEMPLATE
from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.models import Booking
from tutorbook.bookings.schemas import SessionOut, session_out
from tutorbook.errors import AppError, BadGateway, GatewayTimeout
from tutorbook.flows import booking as flows
from tutorbook.identity import AuthUser, Role
from tutorbook.validation import external_id_or_none
from tutorbook.web import credit_pages
from tutorbook.web.core import page_router, page_user, render, require

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]
BOOKING_TYPE = "session-booking"
PURCHASE_TYPE = "package-purchase"


def _with_names(session: Session, *, booking: Booking) -> SessionOut:
    return session_out(booking, *lists.names_for(session, booking))


def checkout_id(value: str | None) -> str | None:
    """The checkout id, or None when Stripe left the template unreplaced, sent nothing, or the
    link was mangled (an id Stripe never makes: control characters, too long)."""
    value = external_id_or_none(value)
    return value if value != CHECKOUT_TEMPLATE else None


@router.get("/payment/success")
async def payment_success(
    request: Request,
    user: Viewer,
    session_id: str | None = None,
    kind: str | None = Query(None, alias="type"),
) -> Response:
    """Confirm-payment, then show the booking; while Stripe has not settled, say so and refresh."""
    parent = require(user, Role.PARENT)
    if kind == PURCHASE_TYPE:  # a lesson package's checkout (issue #28)
        return await credit_pages.purchase_success(request, parent, session_id)
    svc = get_services(request)
    cs_id = checkout_id(session_id)
    if cs_id is None:
        return render(
            request,
            "payment_success.html",
            status_code=400,
            state="error",
            message="This link has no payment reference. Your bookings are under My Bookings.",
        )
    try:
        booking = await flows.confirm_payment(svc, parent=parent, checkout_id=cs_id)
    except (BadGateway, GatewayTimeout):
        # Stripe is slow or unreachable: the payment may well have gone through; look again shortly.
        return render(request, "payment_success.html", state="confirming")
    except AppError as exc:
        return render(
            request,
            "payment_success.html",
            status_code=exc.status_code,
            state="error",
            message=exc.message,
        )
    state = {Status.PENDING: "confirming", Status.CANCELLED: "cancelled"}.get(Status(booking.status), "confirmed")
    return render(
        request,
        "payment_success.html",
        state=state,
        booking=await svc.tx(_with_names, booking=booking),
    )


def _booking_id(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


@router.get("/payment/cancel")
async def payment_cancel(
    request: Request,
    user: Viewer,
    session_id: str | None = None,
    kind: str | None = Query(None, alias="type"),
    booking_id: str | None = None,
    purchase_id: str | None = None,
) -> Response:
    """Cancel-payment, as the frontend's snippet does: the booking is not made; reloading is safe.
    With the template left unreplaced, `booking_id` finds the booking (the parent's own only)."""
    parent = require(user, Role.PARENT)
    if kind == PURCHASE_TYPE:
        return await credit_pages.purchase_cancel(request, parent, purchase_id)
    svc = get_services(request)
    stripe_id, own_id = checkout_id(session_id), _booking_id(booking_id)
    if kind != BOOKING_TYPE or (stripe_id is None and own_id is None):
        return render(request, "payment_cancel.html", state="nothing")
    try:
        booking = await flows.cancel_payment(svc, parent=parent, checkout_id=stripe_id, booking_id=own_id)
    except AppError as exc:
        return render(
            request,
            "payment_cancel.html",
            status_code=exc.status_code,
            state="error",
            message=exc.message,
        )
    return render(
        request,
        "payment_cancel.html",
        state="cancelled",
        booking=await svc.tx(_with_names, booking=booking),
    )
