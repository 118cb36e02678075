"""Forgot / reset password, unsubscribe from reminders, and the development mailbox (/dev/mail,
404 in production)."""

from __future__ import annotations

import hmac
import uuid
from email import message_from_string, policy

from fastapi import BackgroundTasks, Request
from pydantic import ValidationError
from starlette.responses import Response

from tutorbook.accounts import resets
from tutorbook.api import notifications as api_notifications
from tutorbook.api.deps import get_services
from tutorbook.clock import utc_now
from tutorbook.errors import AppError, NotFound
from tutorbook.flows import mail_content
from tutorbook.notifications import repository as outbox
from tutorbook.notifications import service as notices
from tutorbook.notifications.schemas import ForgotPasswordIn, ResetPasswordIn
from tutorbook.web.core import page_router, read_form, redirect, render

router = page_router()


# -- forgot / reset password -----------------------------------------------------------


@router.get("/forgot-password")
def forgot_page(request: Request) -> Response:
    return render(request, "forgot_password.html", email="", sent=False)


@router.post("/forgot-password")
async def forgot(request: Request, tasks: BackgroundTasks) -> Response:
    form = await read_form(request)
    email = form.get("email", "")
    try:
        body = ForgotPasswordIn(email=email)
    except ValidationError:
        return render(
            request,
            "forgot_password.html",
            status_code=422,
            email=email,
            sent=False,
            error="Enter the email address of your account.",
        )
    api_notifications.forgot(get_services(request), tasks, str(body.email))
    return render(request, "forgot_password.html", status_code=202, email="", sent=True)


@router.get("/reset-password")
async def reset_page(request: Request, token: str = "") -> Response:
    """The form, only for a link that still works: a used or expired one says so on opening."""
    if not await get_services(request).read(resets.is_open, token=token, now=utc_now()):
        return render(request, "reset_password.html", status_code=400, token="", closed=True)
    return render(request, "reset_password.html", token=token, closed=False)


@router.post("/reset-password")
async def reset(request: Request) -> Response:
    form = await read_form(request)
    token = form.get("token", "")
    svc = get_services(request)
    try:
        if form.get("password", "") != form.get("confirm", ""):
            raise AppError("The two passwords differ.")
        body = ResetPasswordIn(token=token, password=form.get("password", ""))
        await svc.tx(
            api_notifications.FINISH_RESET,
            token=body.token,
            password=body.password,
            hasher=svc.hasher,
            settings=svc.settings,
            now=utc_now(),
        )
    except ValidationError:
        return render(
            request,
            "reset_password.html",
            status_code=422,
            token=token,
            closed=False,
            error="The password needs at least 8 characters, or the link is incomplete.",
        )
    except AppError as exc:
        return render(
            request,
            "reset_password.html",
            status_code=exc.status_code,
            token=token,
            closed=isinstance(exc, resets.ResetRefused),
            error=exc.message,
        )
    return redirect(request, "/login", notice="Password changed. Log in with the new one.")


# -- unsubscribe from reminders (the link in every reminder) ---------------------------


def _checked(request: Request, user: str, sig: str) -> uuid.UUID:
    settings = get_services(request).settings
    try:
        user_id = uuid.UUID(user)
    except ValueError as exc:
        raise NotFound("This link is not valid.") from exc
    if not hmac.compare_digest(sig, mail_content.unsubscribe_signature(settings, user_id)):
        raise NotFound("This link is not valid.")
    return user_id


@router.get("/notifications/unsubscribe")
def unsubscribe_page(request: Request, user: str = "", sig: str = "") -> Response:
    _checked(request, user, sig)
    return render(request, "unsubscribe.html", user_id=user, sig=sig, done=False)


@router.post("/notifications/unsubscribe")
async def unsubscribe(request: Request) -> Response:
    form = await read_form(request)
    user_id = _checked(request, form.get("user", ""), form.get("sig", ""))
    await get_services(request).tx(notices.set_reminders, user_id=user_id, enabled=False)
    return render(request, "unsubscribe.html", user_id=str(user_id), sig=form.get("sig", ""), done=True)


# -- the development mailbox -----------------------------------------------------------


def _dev_only(request: Request) -> None:
    if get_services(request).settings.is_production:
        raise NotFound("This page does not exist.")


def _text_of(raw: str) -> str:
    msg = message_from_string(raw, policy=policy.default)
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


@router.get("/dev/mail")
async def dev_mailbox(request: Request, to: str = "") -> Response:
    _dev_only(request)
    mails = await get_services(request).tx(outbox.mailbox, limit=200, to=to or None)
    items = [{"id": m.id, "to": m.to_address, "subject": m.subject, "at": m.created_at} for m in mails]
    return render(request, "dev_mail.html", mails=items, to=to)


@router.get("/dev/mail/{mail_id}")
async def dev_mail(request: Request, mail_id: int) -> Response:
    _dev_only(request)
    if not 0 < mail_id < 2**63:  # beyond the id column's range: no such message (not a database error)
        raise NotFound("No such message.")
    mail = await get_services(request).tx(outbox.kept, mail_id)
    if mail is None:
        raise NotFound("No such message.")
    return render(request, "dev_mail_message.html", mail=mail, text=_text_of(mail.raw), raw=mail.raw)
