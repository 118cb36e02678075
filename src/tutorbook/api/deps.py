"""FastAPI dependencies, defined once: the caller (bearer token) and role guards, the settings
and the app's services (whose three doors are the routes' only way into the database).

The JSON API reads the bearer header only; the pages' cookie is `tutorbook.web.core`'s."""

from __future__ import annotations

import hmac
import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from tutorbook.accounts.models import User
from tutorbook.accounts.security import read_token
from tutorbook.config import Settings
from tutorbook.errors import Forbidden, Unauthorized
from tutorbook.flows.services import Services
from tutorbook.identity import AuthUser, Role

COOKIE_NAME = "tutorbook_token"
bearer = HTTPBearer(auto_error=False, description="JWT from POST /api/Auth/login")


def get_services(request: Request) -> Services:
    """The process's services (settings, database, Stripe gateway, meeting providers)."""
    services: Services = request.app.state.services
    return services


def get_settings(request: Request) -> Settings:
    """The app's resolved settings."""
    settings: Settings = request.app.state.settings
    return settings


async def _services(request: Request) -> Services:
    # async: FastAPI runs a sync dependency on a worker thread, a hop per request for a lookup
    return get_services(request)


async def _settings(request: Request) -> Settings:
    return get_settings(request)


ServicesDep = Annotated[Services, Depends(_services)]
AppSettings = Annotated[Settings, Depends(_settings)]


def token_from(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer token. The API ignores the pages' cookie on purpose: a cookie is sent by the
    browser on its own, so honouring it here would open the JSON routes to cross-site requests
    (the pages check a CSRF token on every form; the API has no forms)."""
    if credentials is not None and credentials.scheme.lower() == "bearer":
        return credentials.credentials
    return None


# Built once; the columns an authenticated request needs, not the whole user (no ORM object).
_USER = sa.select(
    User.id, User.role, User.email, User.full_name, User.time_zone, User.token_version, User.disabled_at
).where(User.id == sa.bindparam("user_id"))


def _user_for(session: Session, *, claims: dict[str, Any]) -> AuthUser:
    """The user the (verified) claims name; Unauthorized if the user is gone, was disabled (their
    tokens stop working at once) or reset their password since (the token version). One statement."""
    return _checked(session.execute(_USER, {"user_id": uuid.UUID(claims["sub"])}).one_or_none(), claims)


def _checked(user: sa.Row[*tuple[Any, ...]] | None, claims: dict[str, Any]) -> AuthUser:
    """The caller from their row (None: gone), if the claims still hold for it (`_user_for`)."""
    if user is None or claims.get("tv", 0) != user.token_version:
        raise Unauthorized("Invalid token")
    if user.disabled_at is not None:
        raise Unauthorized("This account is disabled")
    return AuthUser(user.id, user.role, user.email, user.full_name, user.time_zone)


def load_user(services: Services, token: str) -> AuthUser:
    """The user a valid token names (from sync code); Unauthorized otherwise."""
    return services.tx_sync(_user_for, claims=read_token(settings=services.settings, token=token))


async def load_user_async(services: Services, token: str) -> AuthUser:
    """`load_user` for async code: on PostgreSQL one read on the event loop, no thread hop, no
    BEGIN, no ORM session (`Services.read_row`)."""
    claims = read_token(settings=services.settings, token=token)
    return _checked(await services.read_row(_USER, {"user_id": uuid.UUID(claims["sub"])}), claims)


def check_metrics_access(services: Services, *, authorization: str | None) -> None:
    """/metrics is for the scraper (bearer TUTORBOOK_METRICS_TOKEN) and admins (their bearer JWT):
    401 without a valid bearer token, 403 for a valid token of anyone else."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(headers={"WWW-Authenticate": "Bearer"})
    expected = services.settings.metrics_token
    if expected and hmac.compare_digest(token.encode(), expected.encode()):  # constant time
        return
    if load_user(services, token).role != Role.ADMIN:
        raise Forbidden("The metrics need the metrics token or an admin's token")


class _Caller(HTTPBearer):
    """The authenticated caller as one dependency (401 otherwise; 403 when `roles` are given and
    theirs is not one of them): the bearer header read as `HTTPBearer` reads it, then the user's
    row. One `Depends` per request where the guard, `current_user` and `HTTPBearer` were three,
    each solved by FastAPI on every request (issue #33). As an `HTTPBearer` named `HTTPBearer`,
    it is the OpenAPI document's same security scheme, on the same routes."""

    def __init__(self, *roles: Role) -> None:
        super().__init__(auto_error=False, scheme_name="HTTPBearer", description=bearer.model.description)
        self.roles = roles
        self.refusal = f"This needs the role {' or '.join(r.value for r in roles)}"

    async def __call__(self, request: Request) -> AuthUser:  # type: ignore[override]
        user = await current_user(request, await super().__call__(request))
        if self.roles and user.role not in self.roles:
            raise Forbidden(self.refusal)
        return user


async def current_user(request: Request, credentials: HTTPAuthorizationCredentials | None) -> AuthUser:
    """The authenticated caller (401 otherwise), from the bearer header's credentials."""
    token = token_from(request, credentials)
    if not token:
        raise Unauthorized()
    return await load_user_async(get_services(request), token)


CurrentUser = Annotated[AuthUser, Depends(_Caller())]
ParentUser = Annotated[AuthUser, Depends(_Caller(Role.PARENT))]
TeacherUser = Annotated[AuthUser, Depends(_Caller(Role.TEACHER))]
AdminUser = Annotated[AuthUser, Depends(_Caller(Role.ADMIN))]
StaffOrParent = Annotated[AuthUser, Depends(_Caller(Role.PARENT, Role.TEACHER, Role.ADMIN))]
TeacherOrAdmin = Annotated[AuthUser, Depends(_Caller(Role.TEACHER, Role.ADMIN))]
