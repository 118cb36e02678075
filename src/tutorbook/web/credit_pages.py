"""Lesson packages and the credit wallet on the pages (issue #28): a teacher's packages, a parent's
credits (balances, purchases, ledger), buying a package, refunding unused credit, and the
operator's view of a family's wallet with grants and removals. The same use cases as the API."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.responses import Response

from tutorbook import currencies
from tutorbook.api.deps import get_services
from tutorbook.clock import utc_now
from tutorbook.config import ALLOWED_DURATIONS
from tutorbook.credits import ledger, packages, purchases
from tutorbook.credits import service as credits
from tutorbook.credits.schemas import AdjustIn, PackageIn, package_out, purchase_out
from tutorbook.errors import AppError
from tutorbook.flows import packages as package_flows
from tutorbook.identity import AuthUser, Role
from tutorbook.teachers import service as teachers
from tutorbook.validation import external_id_or_none
from tutorbook.web.core import page_router, page_user, read_form, redirect, render, require

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]


def _number(value: str | None) -> int | None:
    text = (value or "").strip()
    if not text or len(text) > 12:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _amount(value: str | None, currency: str) -> int | None:
    """A price typed in major units ("150" or "150.00") as minor units of `currency`."""
    text = (value or "").strip().replace(",", "")
    places = currencies.exponent(currency)
    if not text or len(text) > 12:
        return None
    try:
        whole, _, fraction = text.partition(".")
        if len(fraction) > places or not (whole or fraction).isdigit() or (fraction and not fraction.isdigit()):
            return None
        scale: int = 10**places
        return int(whole or "0") * scale + int((fraction + "0" * places)[:places] or "0")
    except ValueError:
        return None


def _currency(session: Session, *, teacher_id: uuid.UUID) -> str:
    return teachers.get_profile(session, teacher_id).currency


# -- the teacher's packages ----------------------------------------------------------------


def _teacher_packages(session: Session, *, teacher_id: uuid.UUID) -> list[Any]:
    return [package_out(o) for o in packages.offers(session, teacher_id=teacher_id)]


@router.get("/teacher/packages")
async def teacher_packages(request: Request, user: Viewer) -> Response:
    teacher = require(user, Role.TEACHER)
    offers = await get_services(request).read(_teacher_packages, teacher_id=teacher.id)
    return render(request, "teacher_packages.html", offers=offers, durations=ALLOWED_DURATIONS, errors=[])


@router.post("/teacher/packages")
async def create_package(request: Request, user: Viewer) -> Response:
    teacher = require(user, Role.TEACHER)
    form = await read_form(request)
    svc = get_services(request)
    currency = await svc.read(_currency, teacher_id=teacher.id)
    try:
        body = PackageIn(
            lessons=_number(form.get("lessons")),
            duration_minutes=_number(form.get("duration_minutes")),
            price=_amount(form.get("price"), currency),
            valid_days=_number(form.get("valid_days")),
        )
        await svc.tx(
            packages.create,
            teacher_id=teacher.id,
            lessons=body.lessons,
            duration_minutes=body.duration_minutes,
            price=body.price,
            valid_days=body.valid_days,
            now=utc_now(),
        )
    except (ValidationError, AppError) as exc:
        problems = (
            [f"Check the {str(e['loc'][0]).replace('_', ' ')}: {e['msg']}." for e in exc.errors() if e.get("loc")]
            if isinstance(exc, ValidationError)
            else [exc.message] + [str(d.get("message")) for d in (exc.data or []) if isinstance(d, dict)]
        )
        offers = await svc.read(_teacher_packages, teacher_id=teacher.id)
        return render(
            request,
            "teacher_packages.html",
            status_code=422,
            offers=offers,
            durations=ALLOWED_DURATIONS,
            errors=problems,
            selected=form,
        )
    return redirect(request, "/teacher/packages", notice="Package added: parents can buy it on your page.")


@router.post("/teacher/packages/{package_id}/retire")
async def retire_package(package_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    teacher = require(user, Role.TEACHER)
    await read_form(request)
    await get_services(request).tx(packages.retire, teacher_id=teacher.id, package_id=package_id, now=utc_now())
    return redirect(request, "/teacher/packages", notice="No longer sold; credits already bought stay valid.")


def teacher_offers(
    session: Session, *, teacher_id: uuid.UUID, parent_id: uuid.UUID | None, minutes: int
) -> dict[str, Any]:
    """What the teacher page shows of packages: those on sale, and the parent's credits of this
    teacher and length ("Use a credit (N left)")."""
    offers = [package_out(o) for o in packages.offers(session, teacher_id=teacher_id)]
    left = (
        ledger.available(session, parent_id=parent_id, teacher_id=teacher_id, duration_minutes=minutes, now=utc_now())
        if parent_id
        else 0
    )
    return {"offers": offers, "credits_left": left}


# -- the parent's credits ------------------------------------------------------------------


def _wallet(session: Session, *, parent_id: uuid.UUID, after: str | None) -> dict[str, Any]:
    now = utc_now()
    return {
        "credits": credits.credits_of(session, parent_id=parent_id, now=now),
        "page": credits.ledger_page(session, parent_id=parent_id, page_size=50, after=after),
        "bought": [purchase_out(p) for p in purchases.of_parent(session, parent_id=parent_id)],
    }


@router.get("/credits")
async def my_credits(request: Request, user: Viewer, after: str | None = Query(None, max_length=30)) -> Response:
    parent = require(user, Role.PARENT)
    data = await get_services(request).read(_wallet, parent_id=parent.id, after=after)
    return render(request, "credits.html", **data)


@router.post("/packages/{package_id}/buy")
async def buy(package_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    parent = require(user, Role.PARENT)
    await read_form(request)
    try:
        purchase = await package_flows.buy(get_services(request), parent=parent, package_id=package_id)
    except AppError as exc:
        return redirect(request, "/credits", error=exc.message)
    assert purchase.checkout_url is not None
    return redirect(request, purchase.checkout_url)


@router.post("/credits/purchases/{purchase_id}/refund")
async def refund(purchase_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    parent = require(user, Role.PARENT)
    await read_form(request)
    try:
        done = await package_flows.refund_unused(
            get_services(request), user=parent, purchase_id=purchase_id, admin=False
        )
    except AppError as exc:
        return redirect(request, "/credits", error=exc.message)
    return redirect(request, "/credits", notice=f"Refunded: {currencies.money(done.refunded_amount, done.currency)}.")


# -- the success and cancel pages' package half (payment_pages calls these) ----------------------


async def purchase_success(request: Request, parent: AuthUser, session_id: str | None) -> Response:
    checkout_id = external_id_or_none(session_id)
    if checkout_id is None or checkout_id == "{CHECKOUT_SESSION_ID}":
        return render(request, "package_result.html", status_code=400, state="error", message="No payment reference.")
    try:
        purchase = await package_flows.confirm(get_services(request), parent=parent, checkout_id=checkout_id)
    except AppError as exc:
        return render(request, "package_result.html", status_code=exc.status_code, state="error", message=exc.message)
    state = "paid" if purchase.state == "paid" else "confirming"
    return render(request, "package_result.html", state=state, purchase=purchase_out(purchase))


async def purchase_cancel(request: Request, parent: AuthUser, purchase_id: str | None) -> Response:
    try:
        pid = uuid.UUID(purchase_id or "")
    except ValueError:
        return render(request, "package_result.html", state="nothing")
    try:
        purchase = await package_flows.cancel(get_services(request), parent=parent, purchase_id=pid)
    except AppError as exc:
        return render(request, "package_result.html", status_code=exc.status_code, state="error", message=exc.message)
    state = "paid" if purchase.state == "paid" else "cancelled"
    return render(request, "package_result.html", state=state, purchase=purchase_out(purchase))


# -- the operator's view of a family's wallet ------------------------------------------------


def _family(session: Session, *, parent_id: uuid.UUID) -> dict[str, Any]:
    parent = credits.family(session, parent_id)
    return {"family": parent, "wallet": credits.wallet_of(session, parent_id=parent_id, now=utc_now())}


@router.get("/admin/families/{parent_id}/credits")
async def family_wallet(parent_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    require(user, Role.ADMIN)
    data = await get_services(request).read(_family, parent_id=parent_id)
    return render(request, "admin/credits.html", section="/admin/users", durations=ALLOWED_DURATIONS, **data)


@router.post("/admin/families/{parent_id}/credits")
async def adjust(parent_id: uuid.UUID, request: Request, user: Viewer) -> Response:
    admin = require(user, Role.ADMIN)
    form = await read_form(request)
    back = f"/admin/families/{parent_id}/credits"
    lessons = _number(form.get("lessons")) or 0
    try:
        body = AdjustIn(
            teacher_id=form.get("teacher_id"),
            duration_minutes=_number(form.get("duration_minutes")),
            lessons=-lessons if form.get("direction") == "remove" else lessons,
            reason=form.get("reason") or "",
            valid_days=_number(form.get("valid_days")) or 365,
        )
        await get_services(request).tx(credits.adjust, actor=admin.actor, parent_id=parent_id, body=body, now=utc_now())
    except ValidationError:
        return redirect(request, back, error="Choose the teacher, the length, how many (1-100) and say why.")
    except AppError as exc:
        return redirect(request, back, error=exc.message)
    return redirect(request, back, notice="Credits adjusted.")
