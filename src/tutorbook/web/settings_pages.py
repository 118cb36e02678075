"""/settings: what the API's /api/Notifications offers, as a page: the reminders on or off, the
language of the emails' dates and times, and the private calendar feed (made, renewed, ended)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from tutorbook.accounts import service as accounts
from tutorbook.api.deps import get_services
from tutorbook.flows import feeds as feed_flows
from tutorbook.identity import AuthUser
from tutorbook.localtime import DEFAULT_LOCALE, locale_for
from tutorbook.notifications import service as notices
from tutorbook.web.core import page_router, page_user, read_form, redirect, render, require, viewer_locale

router = page_router()
Viewer = Annotated[AuthUser | None, Depends(page_user)]
# The languages offered for the emails' dates and times (the browser's own is added when missing).
LOCALES = ("en_US", "en_GB", "en_CA", "en_AU", "en_IN", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "pl_PL")


def _label(tag: str) -> str:
    locale = locale_for(tag)
    return f"{locale.get_display_name(locale) or tag} ({tag.replace('_', '-')})"


def _view(session: Session, *, user_id: uuid.UUID, browser: str) -> dict[str, Any]:
    user = accounts.get_user(session, user_id)
    current = user.locale or DEFAULT_LOCALE
    tags = list(dict.fromkeys([current, browser, *LOCALES]))
    return {
        "reminders": not user.reminders_opt_out,
        "feed_active": user.calendar_token_hash is not None,
        "locale": current,
        "locales": [{"tag": t, "label": _label(t)} for t in tags],
    }


async def _page(request: Request, user: AuthUser, **extra: Any) -> Response:
    view = await get_services(request).tx(_view, user_id=user.id, browser=viewer_locale(request))
    return render(request, "settings.html", **view, **extra)


@router.get("/settings")
async def settings_page(request: Request, user: Viewer) -> Response:
    return await _page(request, require(user))


@router.post("/settings")
async def save_settings(request: Request, user: Viewer) -> Response:
    me = require(user)
    form = await read_form(request)
    tag = form.get("locale", "")
    # Any language Babel knows (the list, the browser's, one kept earlier), written as it writes it.
    if not tag or len(tag) > 35 or str(locale_for(tag)) != tag:
        return redirect(request, "/settings", error="Choose a language from the list.")
    svc = get_services(request)

    def save(session: Session) -> None:
        notices.set_reminders(session, user_id=me.id, enabled=form.get("reminders") == "on")
        accounts.remember_locale(session, user_id=me.id, locale=tag, overwrite=True)

    await svc.tx(save)
    return redirect(request, "/settings", notice="Settings saved.")


@router.post("/settings/calendar-feed")
async def new_feed(request: Request, user: Viewer) -> Response:
    """A new private feed URL (the old one stops working), shown once: only its digest is kept."""
    me = require(user)
    await read_form(request)
    svc = get_services(request)
    secret = await svc.tx(notices.new_calendar_secret, user_id=me.id)
    return await _page(request, me, feed_url=feed_flows.feed_url(svc.settings, secret))


@router.post("/settings/calendar-feed/delete")
async def end_feed(request: Request, user: Viewer) -> Response:
    me = require(user)
    await read_form(request)
    await get_services(request).tx(notices.revoke_calendar, user_id=me.id)
    return redirect(request, "/settings", notice="Your calendar URL no longer works.")
