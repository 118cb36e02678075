"""What every page shares: templates, the login cookie, CSRF tokens, flash messages, error pages."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from tutorbook.api.deps import COOKIE_NAME, get_services, get_settings, load_user_async
from tutorbook.api.routing import Router
from tutorbook.bookings import reporting
from tutorbook.clock import utc_now
from tutorbook.errors import AppError, Forbidden, Unauthorized
from tutorbook.identity import AuthUser, Role
from tutorbook.localtime import known_zone, negotiate, zone_name
from tutorbook.validation import is_single_line
from tutorbook.web.formatting import FILTERS

log = logging.getLogger("tutorbook.web")

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(FILTERS)

CSRF_COOKIE = "tutorbook_csrf"
CSRF_FIELD = "csrf_token"
FLASH_COOKIE = "tutorbook_flash"
# The visitor's time zone: set by static/timezone.js from the browser, or by the switcher (/time-zone).
ZONE_COOKIE = "tutorbook_zone"
HOME: dict[str, str] = {Role.PARENT: "/my-bookings", Role.TEACHER: "/schedule", Role.ADMIN: "/admin"}
MAX_NEXT = 2000  # characters of a `next` path worth returning to


class LoginRequired(Exception):
    """The page needs a logged-in user; answered with a redirect to /login."""


class CsrfRefused(Forbidden):
    message = "This form has expired or did not come from Tutorbook. Reload the page and try again."


# -- cookies ---------------------------------------------------------------------------


def cookie_options(request: Request) -> dict[str, Any]:
    """HttpOnly, SameSite=Lax, and Secure when the public URL is https."""
    secure = get_settings(request).public_url.startswith("https://")
    return {"httponly": True, "samesite": "lax", "secure": secure, "path": "/"}


def set_login(response: Response, request: Request, token: str) -> None:
    max_age = get_settings(request).jwt_ttl_minutes * 60
    response.set_cookie(COOKIE_NAME, token, max_age=max_age, **cookie_options(request))


def clear_login(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE_NAME, **cookie_options(request))


# -- who is looking --------------------------------------------------------------------


async def page_user(request: Request) -> AuthUser | None:
    """The user named by the login cookie, or None (an expired or stale cookie is ignored).
    For a parent, also their unpaid checkouts still holding a slot (the banner on every page)."""
    token = request.cookies.get(COOKIE_NAME)
    user = None
    if token:
        try:
            user = await load_user_async(get_services(request), token)
        except Unauthorized:
            user = None
    request.state.user = user
    if user is not None and user.role == Role.PARENT:
        holds = await get_services(request).tx(reporting.unpaid_holds, parent_id=user.id, now=utc_now())
        request.state.holds = holds
    return user


def require(user: AuthUser | None, *roles: Role) -> AuthUser:
    """The user, if logged in with one of `roles`; otherwise log in first, or 403."""
    if user is None:
        raise LoginRequired()
    if roles and user.role not in roles:
        names = " or ".join(r.value.lower() + "s" for r in roles)
        raise Forbidden(f"This page is for {names}.")
    return user


def viewer_zone(request: Request, user: AuthUser | None = None) -> str:
    """The visitor's zone: the cookie (browser or switcher), else the profile's, else UTC."""
    chosen = known_zone(unquote(request.cookies.get(ZONE_COOKIE) or ""))
    return chosen or (user.time_zone if user else None) or "UTC"


def set_zone(response: Response, request: Request, zone: str) -> None:
    """Keep the visitor's zone for a year (readable by timezone.js, which sets it the first time)."""
    options = {**cookie_options(request), "httponly": False}
    response.set_cookie(ZONE_COOKIE, quote(zone, safe=""), max_age=365 * 24 * 3600, **options)


def viewer_locale(request: Request) -> str:
    """The visitor's language for dates and times, from the browser's Accept-Language."""
    return negotiate(request.headers.get("accept-language"))


def safe_next(target: str | None) -> str | None:
    """A same-site path to return to (after logging in, registering, adding a child), never
    another site: a path from "/", no scheme or host, no backslash or control character."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or not is_single_line(target, max_length=MAX_NEXT)
    ):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


# -- CSRF: a random nonce in a cookie, and its HMAC in every form ----------------------


def _sign(request: Request, nonce: str) -> str:
    key = get_settings(request).jwt_secret.encode()
    return hmac.new(key, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str:
    """The hidden field value for this browser's forms (a nonce cookie is set if missing)."""
    nonce = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not nonce:
        nonce = request.state.new_csrf = secrets.token_urlsafe(32)
    return _sign(request, nonce)


async def read_form(request: Request) -> dict[str, str]:
    """The posted form, after checking its CSRF token against the cookie."""
    form = await request.form()
    nonce, sent = request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)
    if not nonce or not isinstance(sent, str) or not hmac.compare_digest(sent, _sign(request, nonce)):
        raise CsrfRefused()
    return {key: value for key, value in form.items() if isinstance(value, str)}


# -- responses -------------------------------------------------------------------------


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    """A page from base.html with the user (from page_user), a CSRF token and any flash message."""
    user = context.setdefault("user", getattr(request.state, "user", None))
    context.setdefault("zone", viewer_zone(request, user))
    context.setdefault("loc", viewer_locale(request))
    context.setdefault("zone_label", zone_name(context["zone"], context["loc"]))
    context.setdefault("holds", getattr(request.state, "holds", []))
    context.setdefault("here", here(request))
    context.update(request=request, csrf_field=CSRF_FIELD, csrf=csrf_token(request))
    context.setdefault("flash", _read_flash(request))
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    if getattr(request.state, "new_csrf", None):
        response.set_cookie(CSRF_COOKIE, request.state.new_csrf, **cookie_options(request))
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, **cookie_options(request))
    response.headers.update(
        {
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            # Success/cancel URLs carry checkout ids: keep them out of Referers to other sites.
            "Referrer-Policy": "same-origin",
        }
    )
    return response


def redirect(request: Request, url: str, *, notice: str | None = None, error: str | None = None) -> Response:
    """303 to `url`, carrying a one-time message to the next page in a short-lived cookie."""
    response = RedirectResponse(url, status_code=303)
    if notice or error:
        value = json.dumps({"kind": "error" if error else "notice", "text": error or notice})
        response.set_cookie(FLASH_COOKIE, quote(value), max_age=60, **cookie_options(request))
    return response


def csv_response(body: str, *, name: str) -> Response:
    """A CSV download named tutorbook-<name>-<UTC stamp>.csv, never cached."""
    stamp = utc_now().strftime("%Y%m%d-%H%M")
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="tutorbook-{name}-{stamp}.csv"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _read_flash(request: Request) -> dict[str, Any] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    try:
        flash = json.loads(unquote(raw)) if raw else None
    except ValueError:
        return None
    if not isinstance(flash, dict) or flash.get("kind") not in ("notice", "error"):
        return None
    return {"kind": flash["kind"], "text": str(flash.get("text", ""))}


def error_page(request: Request, status_code: int, message: str) -> Response:
    """The friendly page for an error: the message, never a stack trace."""
    return render(request, "error.html", status_code=status_code, message=message, code=status_code)


def here(request: Request) -> str:
    """This page's path and query, to come back to (a `next`); only the path when the query
    carries a control character or is too long to be worth returning to."""
    query = request.url.query
    fits = len(query) <= MAX_NEXT and all(
        is_single_line(k, max_length=MAX_NEXT) and is_single_line(v, max_length=MAX_NEXT)
        for k, v in request.query_params.multi_items()
    )
    return request.url.path + (f"?{query}" if query and fits else "")


def login_redirect(request: Request) -> Response:
    """To /login and back here afterwards (a form post cannot be replayed: back to the start)."""
    if request.method != "GET":
        return RedirectResponse("/login", status_code=303)
    target = here(request)
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


# -- the route class that turns every failure into a page ------------------------------


class PageRoute(APIRoute):
    """Business errors become the page's message; anything unexpected a friendly 500 page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                return login_redirect(request)
            except AppError as exc:
                return error_page(request, exc.status_code, exc.message)
            except RequestValidationError as exc:
                # A malformed id in the path names no page; a malformed query is a bad link.
                if any(err.get("loc", ("",))[0] == "path" for err in exc.errors()):
                    return error_page(request, 404, "This page does not exist.")
                return error_page(request, 422, "This link is not valid.")
            except StarletteHTTPException as exc:  # a body over the limit (413), a form Starlette cannot parse (400)
                message = exc.detail if isinstance(exc.detail, str) and exc.detail else "This request cannot be served."
                return error_page(request, exc.status_code, message)
            except Exception:
                log.exception("page failed", extra={"path": request.url.path})
                return error_page(request, 500, "Something went wrong on our side. Please try again.")

        return guarded


def page_router() -> Router:
    """A router for pages: outside the OpenAPI document, errors rendered as pages."""
    return Router(include_in_schema=False, route_class=PageRoute)
