"""/api/Admin: the verification reports, and cleanup / reconciliation run now."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Path, Query
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tutorbook import jobs
from tutorbook.admin import reports
from tutorbook.admin import search as admin_search
from tutorbook.admin.schemas import (
    AdminBooking,
    BookingPage,
    InvalidStatusReport,
    JobRun,
    OrphanedReport,
    job_run_out,
    orphaned_out,
)
from tutorbook.api.deps import AdminUser, ServicesDep
from tutorbook.api.routing import Router
from tutorbook.api.teachers import earnings_range
from tutorbook.bookings import earnings, lists
from tutorbook.bookings.schemas import (
    AdminRefundIn,
    PayoutReportOut,
    SessionOut,
    TeacherPayoutsOut,
    session_out,
    session_row_out,
)
from tutorbook.clock import utc_now
from tutorbook.errors import BadGateway
from tutorbook.flows import booking as flows
from tutorbook.flows.services import Services
from tutorbook.payments import gateway as gw
from tutorbook.schemas import Envelope, Reply, errors, ok
from tutorbook.validation import Day, Instant, Line

router = Router(prefix="/api/Admin", tags=["Admin"], responses=errors(401, 403, 422))

CLEANUP_JOBS = ("expire", "purge")
DryRun = Query(default=False, alias="dryRun", description="Say what would change; change nothing")


@router.get("/reports/orphaned-sessions", response_model=Envelope[OrphanedReport])
async def orphaned_sessions(
    user: AdminUser,
    svc: ServicesDep,
    older_than_minutes: int | None = Query(default=None, alias="olderThanMinutes", ge=1, le=525_600),
) -> Reply:
    """Pending, unpaid bookings older than the threshold (default 60 min); 0 is healthy."""
    minutes = older_than_minutes or svc.settings.orphan_threshold_minutes
    return ok(await svc.read(_orphaned, minutes=minutes))


def _orphaned(session: Session, *, minutes: int) -> OrphanedReport:
    rows = reports.orphaned(session, now=utc_now(), older_than=timedelta(minutes=minutes))
    items = [orphaned_out(b) for b in rows]
    return OrphanedReport(threshold_minutes=minutes, count=len(items), items=items)


@router.get("/reports/invalid-statuses", response_model=Envelope[InvalidStatusReport])
async def invalid_statuses(user: AdminUser, svc: ServicesDep) -> Reply:
    """Bookings whose status is not 0-3; always 0 (a CHECK constraint forbids them)."""
    rows = await svc.read(reports.invalid_statuses)
    return ok(InvalidStatusReport(count=len(rows), items=rows))


@router.get("/bookings", response_model=Envelope[BookingPage])
async def bookings(
    user: AdminUser,
    svc: ServicesDep,
    status: Line | None = Query(default=None, max_length=1, description="0-3"),
    teacher: Line | None = Query(default=None, max_length=254, description="email or id"),
    parent: Line | None = Query(default=None, max_length=254, description="email or id"),
    child: Line | None = Query(default=None, max_length=36, description="id"),
    date_from: Day | None = Query(default=None, alias="from", description="YYYY-MM-DD, your zone"),
    date_to: Day | None = Query(default=None, alias="to", description="YYYY-MM-DD, inclusive"),
    q: Line | None = Query(default=None, max_length=255, description="a booking id or a Stripe id"),
    after: Line | None = Query(default=None, max_length=100, description="nextCursor of the previous page"),
    limit: int = Query(default=admin_search.PAGE_SIZE, ge=1, le=100),
) -> Reply:
    """The console's booking search: newest start first, keyset pages (as fast deep as at the top)."""
    filters = {"status": status, "teacher": teacher, "parent": parent, "child": child}
    page = await svc.read(
        _bookings_page, zone=user.time_zone, dates=(date_from, date_to), q=q, after=after, limit=limit, **filters
    )
    return ok(page)


def _bookings_page(
    session: Session,
    /,
    *,
    zone: str,
    dates: tuple[Any, ...],
    q: str | None,
    after: str | None,
    limit: int,
    **filters: str | None,
) -> BookingPage:
    date_from, date_to = dates
    search = admin_search.parse_search(session, zone=zone, date_from=date_from, date_to=date_to, q=q, **filters)
    rows, nxt = admin_search.search_page(session, search=search, after=after, limit=limit)
    items = [session_row_out(row, AdminBooking) for row in rows]
    return BookingPage(items=items, next_cursor=nxt)


@router.get("/reports/payouts", response_model=Envelope[PayoutReportOut])
async def payouts_report(
    user: AdminUser,
    svc: ServicesDep,
    from_: Instant | None = Query(default=None, alias="from"),
    to: Instant | None = Query(default=None),
) -> Reply:
    """Per teacher: the platform's fees and what was transferred, for paid sessions starting in
    [from, to); `unsettled` destination charges have no transfer recorded yet (reconcile)."""
    start, end = earnings_range(from_, to, utc_now())
    rows = await svc.read(earnings.platform_report, start=start, end=end)
    return ok(
        PayoutReportOut(
            from_=start,
            to=end,
            teachers=[TeacherPayoutsOut.model_validate(r, from_attributes=True) for r in rows],
            platform_fees=sum(r.platform_fees for r in rows),
            transferred=sum(r.transferred for r in rows),
        )
    )


@router.post("/cleanup", response_model=Envelope[list[JobRun]], responses=errors(502))
async def cleanup(user: AdminUser, svc: ServicesDep, dry_run: bool = DryRun) -> Reply:
    """Run the expire and purge jobs now: abandoned checkouts cancelled (and closed at Stripe),
    never-paid cancelled bookings past retention deleted."""
    results = [await _run(svc, name, dry_run=dry_run) for name in CLEANUP_JOBS]
    return ok([job_run_out(r) for r in results], "Dry run: nothing changed" if dry_run else "Cleanup done")


@router.post("/reconcile", response_model=Envelope[JobRun], responses=errors(502))
async def reconcile(
    user: AdminUser,
    svc: ServicesDep,
    dry_run: bool = DryRun,
    since: Instant | None = Query(default=None, description="Compare checkouts created since (default: the lookback)"),
) -> Reply:
    """Compare recent Checkout Sessions at Stripe with the bookings and repair; `unsettled` are
    the findings left for a person."""
    result = await _run(svc, "reconcile", dry_run=dry_run, since=since)
    message = f"{len(result.mismatches)} mismatches, {len(result.unsettled)} unsettled"
    return ok(job_run_out(result), message)


async def _run(svc: Services, name: str, *, dry_run: bool, **options: Any) -> jobs.JobResult:
    try:
        return await run_in_threadpool(
            jobs.run, name, svc, now=utc_now(), dry_run=dry_run, metrics=svc.metrics, **options
        )
    except gw.GatewayError as exc:
        raise BadGateway("The payment provider could not be reached; try again in a moment") from exc


@router.post(
    "/bookings/{bookingId}/refund",
    response_model=Envelope[SessionOut],
    name="refundBooking",
    responses=errors(404, 409),
)
async def refund_booking(
    booking_id: Annotated[uuid.UUID, Path(alias="bookingId")], body: AdminRefundIn, user: AdminUser, svc: ServicesDep
) -> Reply:
    """Give back `amount` of a paid booking without cancelling it (the console's "Refund without
    cancelling"): recorded with the reason in one transaction, then sent to Stripe; at most what
    is left (422); the same `idempotencyKey` refunds once (message says so)."""
    booking, new = await flows.refund_as_admin(
        svc, admin=user, booking_id=booking_id, amount=body.amount, note=body.reason, key=body.idempotency_key
    )
    teacher, student = await svc.tx(lists.names_for, booking=booking)
    message = "Refund asked of Stripe" if new else "This refund was asked for already"
    return ok(session_out(booking, teacher, student), message)
