"""The operator console's back office: reconciliation, users (disable, listing) and the reports
with their CSV. The bookings side is `admin_pages`."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi import Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tutorbook import jobs
from tutorbook.accounts import service as accounts
from tutorbook.accounts.models import User
from tutorbook.admin import console, reports
from tutorbook.admin.schemas import orphaned_out
from tutorbook.api.deps import get_services
from tutorbook.clock import utc_now
from tutorbook.config import Settings
from tutorbook.errors import AppError, NotFound
from tutorbook.identity import AuthUser, Role
from tutorbook.payments import gateway as gw
from tutorbook.teachers import service as teachers
from tutorbook.web.admin_pages import Viewer, admin
from tutorbook.web.core import csv_response, page_router, read_form, redirect, render

router = page_router()


# -- reconcile --------------------------------------------------------------------------


@router.get("/admin/reconcile")
async def reconcile_page(request: Request, user: Viewer) -> Response:
    admin(user)
    run = await get_services(request).tx(console.last_reconcile)
    findings = console.explain(run.findings if run else [])
    return render(
        request,
        "admin/reconcile.html",
        section="/admin/reconcile",
        run=run,
        findings=findings,
        open_count=len(console.open_findings(run)),
    )


@router.post("/admin/reconcile")
async def reconcile_now(request: Request, user: Viewer) -> Response:
    admin(user)
    await read_form(request)
    svc = get_services(request)
    try:
        result = await run_in_threadpool(jobs.run, "reconcile", svc, now=utc_now(), metrics=svc.metrics)
    except gw.GatewayError:
        return redirect(request, "/admin/reconcile", error="Stripe could not be reached; try again in a moment.")
    notice = f"Reconciled: {len(result.mismatches)} findings, {len(result.unsettled)} left for a person."
    return redirect(request, "/admin/reconcile", notice=notice)


# -- users ------------------------------------------------------------------------------


@router.get("/admin/users")
async def users(
    request: Request,
    user: Viewer,
    q: str | None = Query(default=None, max_length=255),
    role: str | None = Query(default=None, max_length=255),
) -> Response:
    admin(user)
    role_filter = role if role in {r.value for r in Role} else None

    def find(session: Session) -> tuple[list[User], dict[uuid.UUID, bool]]:
        found = accounts.find_users(session, query=q, role=Role(role_filter) if role_filter else None)
        listed = {}
        for u in found:
            if u.role == Role.TEACHER:
                listed[u.id] = teachers.get_profile(session, u.id).listed
        return found, listed

    found, listed = await get_services(request).tx(find)
    return render(
        request,
        "admin/users.html",
        section="/admin/users",
        found=found,
        listed=listed,
        q=q or "",
        role=role_filter or "",
        roles=[r.value for r in Role],
    )


def _back_to_users(form: dict[str, Any]) -> str:
    target = form.get("back", "")
    return target if target.startswith("/admin/users") and "//" not in target else "/admin/users"


@router.post("/admin/users/{user_id}/disable")
async def disable(user_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    return await _set_disabled(user_id, request, user, disabled=True)


@router.post("/admin/users/{user_id}/enable")
async def enable(user_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    return await _set_disabled(user_id, request, user, disabled=False)


async def _set_disabled(user_id: uuid.UUID, request: Request, user: AuthUser | None, *, disabled: bool) -> Response:
    me = admin(user)
    form = await read_form(request)
    try:
        changed = await get_services(request).tx(
            accounts.set_disabled, by=me.id, user_id=user_id, disabled=disabled, now=utc_now()
        )
    except AppError as exc:
        return redirect(request, _back_to_users(form), error=exc.message)
    word = "disabled" if disabled else "re-enabled"
    return redirect(request, _back_to_users(form), notice=f"{changed.email} {word}.")


@router.post("/admin/teachers/{teacher_id}/listing")
async def listing(teacher_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    admin(user)
    form = await read_form(request)
    listed = form.get("listed") == "on"
    try:
        await get_services(request).tx(teachers.set_listed, teacher_id=teacher_id, listed=listed)
    except AppError as exc:
        return redirect(request, _back_to_users(form), error=exc.message)
    notice = "The teacher is listed again." if listed else "The teacher is no longer listed or bookable."
    return redirect(request, _back_to_users(form), notice=notice)


# -- reports ----------------------------------------------------------------------------


def _reports(session: Session, *, settings: Settings) -> dict[str, Any]:
    now = utc_now()
    minutes = settings.orphan_threshold_minutes
    old = reports.orphaned(session, now=now, older_than=timedelta(minutes=minutes))
    orphaned = [
        {**orphaned_out(b).model_dump(), "created_at": b.created_at, "checkout_expires_at": b.checkout_expires_at}
        for b in old
    ]
    return {
        "threshold": minutes,
        "orphaned": orphaned,
        "invalid": reports.invalid_statuses(session),
        "revenue": console.revenue_by_month(session, now=now),
    }


@router.get("/admin/reports")
async def reports_page(request: Request, user: Viewer) -> Response:
    admin(user)
    svc = get_services(request)
    data = await svc.tx(_reports, settings=svc.settings)
    return render(request, "admin/reports.html", section="/admin/reports", **data)


CSV_COLUMNS = {
    "orphaned-sessions": (
        "orphaned",
        [
            "id",
            "status",
            "status_name",
            "stripe_session_id",
            "created_at",
            "checkout_expires_at",
            "teacher_id",
            "student_id",
        ],
    ),
    "invalid-statuses": ("invalid", ["id", "status", "count"]),
    "revenue": (
        "revenue",
        ["month", "currency", "payments", "gross", "refunds", "net", "platform_fees", "to_teachers", "unsettled"],
    ),
}


@router.get("/admin/reports/{name}.csv")
async def report_csv(name: str, request: Request, user: Viewer) -> Response:
    admin(user)
    if name not in CSV_COLUMNS:
        raise NotFound("This report does not exist.")
    svc = get_services(request)
    data = await svc.tx(_reports, settings=svc.settings)
    key, columns = CSV_COLUMNS[name]
    return csv_response(console.to_csv(data[key], columns), name=name)
