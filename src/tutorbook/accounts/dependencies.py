"""Who is calling: bearer token (API) or HttpOnly cookie (pages), and role guards."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tutorbook.accounts.models import Role, User
from tutorbook.accounts.security import read_token
from tutorbook.config import Settings
from tutorbook.db import Database
from tutorbook.errors import Forbidden, Unauthorized

COOKIE_NAME = "tutorbook_token"
bearer = HTTPBearer(auto_error=False, description="JWT from POST /api/Auth/login")


@dataclass(frozen=True)
class AuthUser:
    id: uuid.UUID
    role: str
    email: str
    full_name: str
    time_zone: str

    @property
    def actor(self) -> str:
        return f"user:{self.id}"


def get_settings(request: Request) -> Settings:
    """The app's resolved settings."""
    return request.app.state.settings


AppSettings = Annotated[Settings, Depends(get_settings)]


def token_from(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer token. The API ignores the pages' cookie on purpose: a cookie is sent by the
    browser on its own, so honouring it here would open the JSON routes to cross-site requests
    (the pages check a CSRF token on every form; the API has no forms)."""
    if credentials is not None and credentials.scheme.lower() == "bearer":
        return credentials.credentials
    return None


def user_for_token(*, settings: Settings, db: Database, token: str) -> AuthUser:
    """The user a valid token names; Unauthorized if the token or the user is gone."""
    claims = read_token(settings=settings, token=token)
    with db.session_scope() as session:
        user = session.get(User, uuid.UUID(claims["sub"]))
        if user is None:
            raise Unauthorized("Invalid token")
        return AuthUser(user.id, user.role, user.email, user.full_name, user.time_zone)


def load_user(request: Request, token: str) -> AuthUser:
    """The user a valid token names, with the app's settings and database."""
    return user_for_token(settings=request.app.state.settings, db=request.app.state.db, token=token)


def check_metrics_access(*, settings: Settings, db: Database, authorization: str | None) -> None:
    """/metrics is for the scraper (bearer TUTORBOOK_METRICS_TOKEN) and admins (their bearer JWT):
    401 without a valid bearer token, 403 for a valid token of anyone else."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(headers={"WWW-Authenticate": "Bearer"})
    expected = settings.metrics_token
    if expected and hmac.compare_digest(token.encode(), expected.encode()):  # constant time
        return
    if user_for_token(settings=settings, db=db, token=token).role != Role.ADMIN:
        raise Forbidden("The metrics need the metrics token or an admin's token")


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> AuthUser:
    """The authenticated caller (401 otherwise)."""
    token = token_from(request, credentials)
    if not token:
        raise Unauthorized()
    return load_user(request, token)


def _role(*roles: Role):
    def guard(user: Annotated[AuthUser, Depends(current_user)]) -> AuthUser:
        if user.role not in roles:
            raise Forbidden(f"This needs the role {' or '.join(r.value for r in roles)}")
        return user

    return guard


CurrentUser = Annotated[AuthUser, Depends(current_user)]
ParentUser = Annotated[AuthUser, Depends(_role(Role.PARENT))]
TeacherUser = Annotated[AuthUser, Depends(_role(Role.TEACHER))]
AdminUser = Annotated[AuthUser, Depends(_role(Role.ADMIN))]
StaffOrParent = Annotated[AuthUser, Depends(_role(Role.PARENT, Role.TEACHER, Role.ADMIN))]
TeacherOrAdmin = Annotated[AuthUser, Depends(_role(Role.TEACHER, Role.ADMIN))]
