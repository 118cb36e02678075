"""Password reset (/api/Auth/forgot-password, /api/Auth/reset-password), the user's mail
settings and calendar feed (/api/Notifications), and the feed itself (/calendar/{secret}.ics)."""

from __future__ import annotations

from fastapi import BackgroundTasks, Response

from tutorbook.api.deps import CurrentUser, ServicesDep
from tutorbook.api.routing import Router
from tutorbook.clock import utc_now
from tutorbook.db.doors import cpu_bound
from tutorbook.errors import NotFound
from tutorbook.flows import feeds as feed_flows
from tutorbook.flows.services import Services
from tutorbook.notifications import service
from tutorbook.notifications.schemas import (
    CalendarFeedOut,
    ForgotPasswordIn,
    MailSettingsIn,
    MailSettingsOut,
    ResetPasswordIn,
)
from tutorbook.schemas import Envelope, Reply, errors, ok

auth = Router(prefix="/api/Auth", tags=["Auth"], responses=errors(400, 422))
router = Router(prefix="/api/Notifications", tags=["Notifications"], responses=errors(400, 401, 422))
feeds = Router(tags=["Notifications"])
FINISH_RESET = cpu_bound(service.finish_password_reset)  # hashes the password

FORGOT_ANSWER = "If an account has this email, a reset link is on its way"


def start_reset(svc: Services, email: str) -> None:
    """After the answer is sent: the token and its email, in one transaction."""
    svc.tx_sync(service.request_password_reset, email=email, settings=svc.settings, now=utc_now())


def forgot(svc: Services, tasks: BackgroundTasks, email: str) -> None:
    """The same 202 whether or not the account exists: the work happens after the response."""
    tasks.add_task(start_reset, svc, email)


@auth.post("/forgot-password", response_model=Envelope[bool], status_code=202)
def forgot_password(body: ForgotPasswordIn, svc: ServicesDep, tasks: BackgroundTasks) -> Reply:
    """Email a single-use reset link (valid 30 minutes) if an account has this email. Always 202,
    in the same time either way: the lookup happens after the answer."""
    forgot(svc, tasks, str(body.email))
    return ok(True, FORGOT_ANSWER)


@auth.post("/reset-password", response_model=Envelope[bool])
async def reset_password(body: ResetPasswordIn, svc: ServicesDep) -> Reply:
    """Set a new password with a reset token (once); every earlier login token stops working, and
    the account's email is told that the password was changed."""
    await svc.tx(
        FINISH_RESET, token=body.token, password=body.password, hasher=svc.hasher, settings=svc.settings, now=utc_now()
    )
    return ok(True, "Password changed; log in with the new one")


@router.get("/settings", response_model=Envelope[MailSettingsOut], name="getSettings")
async def get_mail_settings(user: CurrentUser, svc: ServicesDep) -> Reply:
    """Your mail settings: whether you get the 24 h / 1 h reminders."""
    return ok(MailSettingsOut(reminders=not await svc.read(service.reminders_off, user_id=user.id)))


@router.put("/settings", response_model=Envelope[MailSettingsOut], name="updateSettings")
async def put_mail_settings(body: MailSettingsIn, user: CurrentUser, svc: ServicesDep) -> Reply:
    """Turn the reminders on or off (confirmations, cancellations and security mail always go)."""
    await svc.tx(service.set_reminders, user_id=user.id, enabled=body.reminders)
    return ok(MailSettingsOut(reminders=body.reminders), "Saved")


@router.post("/calendar-feed", response_model=Envelope[CalendarFeedOut], status_code=201)
async def new_calendar_feed(user: CurrentUser, svc: ServicesDep) -> Reply:
    """A private calendar subscription URL for your sessions (Google, Outlook, Apple Calendar).
    Asking again makes a new URL and ends the old one."""
    secret = await svc.tx(service.new_calendar_secret, user_id=user.id)
    return ok(CalendarFeedOut(url=feed_flows.feed_url(svc.settings, secret)), "Subscribe to this URL")


@router.delete("/calendar-feed", response_model=Envelope[bool])
async def revoke_calendar_feed(user: CurrentUser, svc: ServicesDep) -> Reply:
    """End your calendar subscription URL."""
    await svc.tx(service.revoke_calendar, user_id=user.id)
    return ok(True, "The calendar URL no longer works")


@feeds.get(
    "/calendar/{secret}.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}, 404: {"description": "Unknown or revoked URL"}},
)
async def calendar_feed(secret: str, svc: ServicesDep) -> Response:
    """Your paid sessions as an iCalendar feed (cancelled ones marked CANCELLED)."""
    body = await svc.read(feed_flows.feed, secret=secret, settings=svc.settings, now=utc_now())
    if body is None:
        raise NotFound("Unknown calendar URL")
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300", "Content-Disposition": 'inline; filename="tutorbook.ics"'},
    )
