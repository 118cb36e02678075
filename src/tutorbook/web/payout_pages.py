"""A teacher's payouts (connect Stripe, see what Stripe still needs) and earnings pages."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.responses import RedirectResponse, Response

from tutorbook.admin.console import to_csv
from tutorbook.api.deps import get_services
from tutorbook.bookings import earnings
from tutorbook.bookings.lifecycle import STATUS_NAMES
from tutorbook.clock import utc_now
from tutorbook.errors import AppError
from tutorbook.flows import payouts
from tutorbook.identity import AuthUser, Role
from tutorbook.validation import Day
from tutorbook.web.core import csv_response, page_router, page_user, read_form, redirect, render, require
from tutorbook.web.formatting import major

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]


@router.get("/teacher/payouts")
async def payouts_page(
    request: Request, user: Viewer, returned: int | None = Query(None), refresh: int | None = Query(None)
) -> Response:
    teacher = require(user, Role.TEACHER)
    status = await payouts.refresh(get_services(request), teacher=teacher)
    return render(request, "payouts.html", status=status, returned=bool(returned), expired=bool(refresh))


@router.post("/teacher/payouts/onboard")
async def onboard(request: Request, user: Viewer) -> Response:
    teacher = require(user, Role.TEACHER)
    await read_form(request)
    try:
        url = await payouts.onboard(get_services(request), teacher=teacher)
    except AppError as exc:
        return redirect(request, "/teacher/payouts", error=exc.message)
    return RedirectResponse(url, status_code=303)


def _range(from_: date | None, to: date | None) -> tuple[date, date, datetime, datetime]:
    """The days asked (by default the last 12 months and the next one; at most two years) and
    their instants."""
    today = utc_now().date()
    default_first = (today.replace(day=1) - timedelta(days=335)).replace(day=1)
    first, last = from_ or default_first, to or today + timedelta(days=31)
    if last < first or last - first > timedelta(days=732):
        first, last = default_first, today + timedelta(days=31)
    start = datetime.combine(first, time(0), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)
    return first, last, start, end


@router.get("/teacher/earnings")
async def earnings_page(
    request: Request,
    user: Viewer,
    from_: Day | None = Query(None, alias="from"),
    to: Day | None = Query(None),
) -> Response:
    teacher = require(user, Role.TEACHER)
    first, last, start, end = _range(from_, to)
    svc = get_services(request)
    found = await svc.tx(earnings.for_teacher, teacher_id=teacher.id, start=start, end=end)
    return render(
        request,
        "earnings.html",
        found=found,
        first=first,
        last=last,
        statuses=STATUS_NAMES,
        fee_percent=f"{svc.settings.platform_fee_percent:g}",
    )


CSV_COLUMNS = [
    "starts_at", "subject", "child", "status", "currency", "paid", "refunded", "platform_fee", "you_keep",
    "paid_out", "settled", "transfer_id", "booking_id",
]  # fmt: skip


@router.get("/teacher/earnings.csv")
async def earnings_csv(
    request: Request,
    user: Viewer,
    from_: Day | None = Query(None, alias="from"),
    to: Day | None = Query(None),
) -> Response:
    """The per-session earnings of the period as CSV (amounts in major units, times in UTC)."""
    teacher = require(user, Role.TEACHER)
    first, last, start, end = _range(from_, to)
    found = await get_services(request).tx(earnings.for_teacher, teacher_id=teacher.id, start=start, end=end)
    rows = [
        {
            "starts_at": e.starts_at,
            "subject": e.subject,
            "child": e.student_name,
            "status": STATUS_NAMES.get(e.status, ""),
            "currency": e.currency.upper(),
            "paid": major(e.gross, e.currency),
            "refunded": major(e.refunded, e.currency),
            "platform_fee": major(e.fee, e.currency),
            "you_keep": major(e.net, e.currency),
            "paid_out": "yes" if e.paid_out else "no",
            "settled": "yes" if e.settled else "no",
            "transfer_id": e.transfer_id,
            "booking_id": e.booking_id,
        }
        for e in found.sessions
    ]
    return csv_response(to_csv(rows, CSV_COLUMNS), name=f"earnings-{first.isoformat()}-{last.isoformat()}")
