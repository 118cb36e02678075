"""Register, log in, log out, and a parent's children."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import available_timezones

from fastapi import Depends, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tutorbook.accounts import service as accounts
from tutorbook.accounts.schemas import LoginIn, LoginOut, RegisterIn, StudentIn
from tutorbook.accounts.security import issue_token
from tutorbook.api import accounts as api_accounts
from tutorbook.api.deps import get_services
from tutorbook.bookings import reporting
from tutorbook.clock import utc_now
from tutorbook.errors import AppError, Unauthorized
from tutorbook.flows import accounts as account_flows
from tutorbook.identity import AuthUser, Role
from tutorbook.localtime import known_zone, zone_name
from tutorbook.web.core import (
    HOME,
    clear_login,
    page_router,
    page_user,
    read_form,
    redirect,
    render,
    require,
    safe_next,
    set_login,
    set_zone,
    viewer_locale,
    viewer_zone,
)

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]
ZONES = sorted(available_timezones())
FIELD_LABELS = {
    "email": "Email",
    "password": "Password",
    "full_name": "Full name",
    "role": "Role",
    "time_zone": "Time zone",
    "grade_level": "Grade",
    "notes": "Notes",
}


def problems(exc: ValidationError) -> list[str]:
    """Pydantic's errors as sentences naming the form field."""
    out = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err.get("loc") else ""
        message = err["msg"].removeprefix("Value error, ")
        out.append(f"{FIELD_LABELS.get(field, field.replace('_', ' ').capitalize())}: {message}")
    return out


# -- log in / log out ------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, user: Viewer, next: str | None = None) -> Response:
    return render(request, "login.html", next=safe_next(next) or "", email="")


def _login(*, request: Request, email: str, password: str) -> LoginOut:
    # The API's own login: the same throttle, checks and token.
    body = LoginIn(email=email, password=password)
    return api_accounts.login_out(get_services(request), request, email=body.email, password=body.password)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    email, password = form.get("email", ""), form.get("password", "")
    target = safe_next(form.get("next"))
    try:
        if not email or not password:
            raise AppError("Enter your email and password.")
        out = await run_in_threadpool(_login, request=request, email=email, password=password)
    except (ValidationError, AppError) as exc:
        failed = exc if isinstance(exc, AppError) else Unauthorized("Wrong email or password")
        page = render(
            request,
            "login.html",
            status_code=failed.status_code,
            error=failed.message,
            next=target or "",
            email=email,
        )
        page.headers.update(failed.headers or {})  # Retry-After when throttled
        return page
    # The emails' language: the browser's, unless one is kept already (chosen on /settings).
    await get_services(request).tx(accounts.remember_locale, user_id=out.user.id, locale=viewer_locale(request))
    response = redirect(request, target or HOME.get(out.user.role, "/"))
    set_login(response, request, out.token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await read_form(request)
    response = redirect(request, "/", notice="You are logged out.")
    clear_login(response, request)
    return response


# -- register --------------------------------------------------------------------------


@router.get("/register")
def register_page(request: Request, user: Viewer, next: str | None = None) -> Response:
    form = {"role": "Parent", "time_zone": viewer_zone(request, user)}
    return render(request, "register.html", form=form, zones=ZONES, next=safe_next(next) or "")


@router.post("/register")
async def register(request: Request) -> Response:
    form = await read_form(request)
    svc = get_services(request)
    try:
        body = RegisterIn(
            email=form.get("email", ""),
            password=form.get("password", ""),
            full_name=form.get("full_name", ""),
            role=form.get("role", ""),
            time_zone=form.get("time_zone") or "UTC",
        )
        user = await run_in_threadpool(  # hashes the password
            account_flows.register,
            svc,
            address=api_accounts.client_address(request),
            email=body.email,
            password=body.password,
            full_name=body.full_name,
            role=Role(body.role),
            time_zone=body.time_zone,
            now=utc_now(),
        )
    except (ValidationError, AppError) as exc:
        errors = problems(exc) if isinstance(exc, ValidationError) else [exc.message]
        status = 422 if isinstance(exc, ValidationError) else exc.status_code
        form.pop("password", None)
        return render(
            request,
            "register.html",
            status_code=status,
            errors=errors,
            form=form,
            zones=ZONES,
            next=safe_next(form.get("next")) or "",
        )
    await svc.tx(accounts.remember_locale, user_id=user.id, locale=viewer_locale(request))
    token = issue_token(settings=svc.settings, user_id=user.id, role=user.role, now=utc_now())
    target = safe_next(form.get("next"))
    if user.role == Role.PARENT:
        # A new parent has no child yet: add one first, then back to where they were.
        children = f"/children?next={quote(target, safe='')}" if target else "/children"
        response = redirect(request, children, notice="Welcome! Add a child to start booking.")
    else:
        response = redirect(
            request, "/teacher/profile", notice="Welcome! Complete the checklist so parents can find and book you."
        )
    set_login(response, request, token)
    return response


# -- children --------------------------------------------------------------------------


def _children(session: Session, *, parent_id: uuid.UUID) -> list[dict[str, Any]]:
    return [
        {"id": s.id, "full_name": s.full_name, "grade_level": s.grade_level or ""}
        for s in accounts.list_students(session, parent_id=parent_id)
    ]


def _student_fields(form: dict[str, Any]) -> dict[str, Any]:
    return StudentIn(full_name=form.get("full_name", ""), grade_level=form.get("grade_level") or None).model_dump(
        exclude={"notes"}
    )


@router.get("/children")
async def children_page(request: Request, user: Viewer, next: str | None = None) -> Response:
    parent = require(user, Role.PARENT)
    items = await get_services(request).tx(_children, parent_id=parent.id)
    return render(request, "children.html", children=items, next=safe_next(next) or "", form={})


@router.post("/children")
async def add_child(request: Request, user: Viewer) -> Response:
    parent = require(user, Role.PARENT)
    form = await read_form(request)
    svc = get_services(request)
    try:
        fields = _student_fields(form)
        await svc.tx(accounts.add_student, parent_id=parent.id, fields=fields, now=utc_now())
    except (ValidationError, AppError) as exc:
        errors = problems(exc) if isinstance(exc, ValidationError) else [exc.message]
        items = await svc.tx(_children, parent_id=parent.id)
        return render(
            request,
            "children.html",
            status_code=422,
            children=items,
            errors=errors,
            next=safe_next(form.get("next")) or "",
            form=form,
        )
    target = safe_next(form.get("next"))
    notice = f"{fields['full_name']} added." + (" Now choose your time." if target else "")
    return redirect(request, target or "/children", notice=notice)


@router.post("/children/{student_id}")
async def update_child(student_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    parent = require(user, Role.PARENT)
    form = await read_form(request)
    try:
        fields = _student_fields(form)
        await get_services(request).tx(
            accounts.update_student, parent_id=parent.id, student_id=student_id, fields=fields
        )
    except ValidationError as exc:
        return redirect(request, "/children", error="; ".join(problems(exc)))
    except AppError as exc:
        return redirect(request, "/children", error=exc.message)
    return redirect(request, "/children", notice="Saved.")


@router.post("/children/{student_id}/delete")
async def delete_child(student_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    parent = require(user, Role.PARENT)
    await read_form(request)
    try:
        await get_services(request).tx(reporting.delete_student, parent_id=parent.id, student_id=student_id)
    except AppError as exc:
        return redirect(request, "/children", error=exc.message)
    return redirect(request, "/children", notice="Removed.")


# -- the visitor's time zone -----------------------------------------------------------


@router.get("/time-zone")
def time_zone_page(request: Request, user: Viewer, next: str | None = None) -> Response:
    loc = viewer_locale(request)
    zones = [{"id": z, "label": f"{zone_name(z, loc)} · {z}"} for z in ZONES if "/" in z or z == "UTC"]
    return render(request, "time_zone.html", zones=zones, next=safe_next(next) or "/")


@router.post("/time-zone")
async def set_time_zone(request: Request, user: Viewer) -> Response:
    form = await read_form(request)
    target = safe_next(form.get("next")) or "/"
    zone = known_zone(form.get("zone"))
    if zone is None:
        return redirect(request, f"/time-zone?next={quote(target, safe='')}", error="Choose a time zone from the list.")
    response = redirect(request, target, notice=f"Times are now shown in {zone_name(zone, viewer_locale(request))}.")
    set_zone(response, request, zone)
    return response
