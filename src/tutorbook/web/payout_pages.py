"""A teacher's payouts (connect Stripe, see what Stripe still needs) and earnings pages."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.responses import RedirectResponse

from tutorbook.api.deps import get_services
from tutorbook.bookings import earnings
from tutorbook.clock import utc_now
from tutorbook.errors import AppError
from tutorbook.flows import payouts
from tutorbook.identity import AuthUser, Role
from tutorbook.validation import Day
from tutorbook.web.core import page_router, page_user, read_form, redirect, render, require

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]


@router.get("/teacher/payouts")
async def payouts_page(
    request: Request, user: Viewer, returned: int | None = Query(None), refresh: int | None = Query(None)
):
    teacher = require(user, Role.TEACHER)
    status = await payouts.refresh(get_services(request), teacher=teacher)
    return render(request, "payouts.html", status=status, returned=bool(returned), expired=bool(refresh))


@router.post("/teacher/payouts/onboard")
async def onboard(request: Request, user: Viewer):
    teacher = require(user, Role.TEACHER)
    await read_form(request)
    try:
        url = await payouts.onboard(get_services(request), teacher=teacher)
    except AppError as exc:
        return redirect(request, "/teacher/payouts", error=exc.message)
    return RedirectResponse(url, status_code=303)


@router.get("/teacher/earnings")
async def earnings_page(
    request: Request,
    user: Viewer,
    from_: Day | None = Query(None, alias="from"),
    to: Day | None = Query(None),
):
    teacher = require(user, Role.TEACHER)
    today = utc_now().date()
    first = from_ or (today.replace(day=1) - timedelta(days=335)).replace(day=1)
    last = to or today + timedelta(days=31)
    if last < first or last - first > timedelta(days=732):
        first, last = (today.replace(day=1) - timedelta(days=335)).replace(day=1), today + timedelta(days=31)
    start = datetime.combine(first, time(0), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)
    found = await get_services(request).tx(earnings.for_teacher, teacher_id=teacher.id, start=start, end=end)
    return render(request, "earnings.html", found=found, first=first, last=last, zone=teacher.time_zone)
