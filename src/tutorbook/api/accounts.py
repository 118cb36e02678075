"""/api/Auth and /api/Students."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Path, Request
from sqlalchemy.orm import Session

from tutorbook.accounts import service
from tutorbook.accounts.schemas import (
    LoginIn,
    LoginOut,
    RegisterIn,
    StudentIn,
    StudentOut,
    UserOut,
)
from tutorbook.accounts.security import issue_token
from tutorbook.api.deps import AppSettings, CurrentUser, ParentUser, ServicesDep
from tutorbook.api.routing import Router
from tutorbook.bookings import reporting
from tutorbook.clock import utc_now
from tutorbook.flows import accounts as account_flows
from tutorbook.flows.services import Services
from tutorbook.identity import Role
from tutorbook.localtime import negotiate
from tutorbook.schemas import Envelope, Reply, errors, ok

auth = Router(prefix="/api/Auth", tags=["Auth"], responses=errors(400, 401, 409, 422, 429))
students = Router(prefix="/api/Students", tags=["Students"], responses=errors(400, 401, 403, 404, 409, 422))

StudentId = Annotated[uuid.UUID, Path(alias="studentId")]


@auth.post("/register", response_model=Envelope[UserOut], status_code=201)
def register(body: RegisterIn, request: Request, svc: ServicesDep, settings: AppSettings) -> Reply:
    """Create a Parent or Teacher account (admins come from the CLI). An email that has an
    account already is a 409, counted against the address like a failed login (429 after many).
    Its emails write dates and times in the language of the request's Accept-Language."""
    user = account_flows.register(
        svc,
        address=client_address(request),
        settings=settings,
        email=body.email,
        password=body.password,
        full_name=body.full_name,
        role=Role(body.role),
        time_zone=body.time_zone,
        now=utc_now(),
        locale=negotiate(request.headers.get("accept-language")),
    )
    return ok(UserOut.model_validate(user), "Account created")


def client_address(request: Request) -> str:
    """The client's address as the throttle knows it (see TUTORBOOK_TRUSTED_PROXIES)."""
    return request.client.host if request.client else "-"


def login_out(svc: Services, request: Request, *, email: str, password: str) -> LoginOut:
    """Log in from this request's client address (see TUTORBOOK_TRUSTED_PROXIES): token and user."""
    now = utc_now()
    user = account_flows.log_in(svc, email=email, password=password, address=client_address(request), now=now)
    token = issue_token(settings=svc.settings, user_id=user.id, role=user.role, now=now, version=user.token_version)
    return LoginOut(token=token, expires_in=svc.settings.jwt_ttl_minutes * 60, user=UserOut.model_validate(user))


@auth.post("/login", response_model=Envelope[LoginOut])
def login(body: LoginIn, request: Request, svc: ServicesDep) -> Reply:
    """Exchange email and password for a bearer token (throttled: 429 with Retry-After)."""
    return ok(login_out(svc, request, email=body.email, password=body.password), "Logged in")


@auth.get("/me", response_model=Envelope[UserOut])
async def me(user: CurrentUser, svc: ServicesDep) -> Reply:
    """The current user."""
    return ok(await svc.read(_me, user_id=user.id))


def _me(session: Session, *, user_id: uuid.UUID) -> UserOut:
    return UserOut.model_validate(service.get_user(session, user_id))


@students.get("", response_model=Envelope[list[StudentOut]], name="list")
async def list_students(user: ParentUser, svc: ServicesDep) -> Reply:
    """Your children."""
    return ok(await svc.read(_students, parent_id=user.id))


def _students(session: Session, *, parent_id: uuid.UUID) -> list[StudentOut]:
    return [StudentOut.model_validate(s) for s in service.list_students(session, parent_id=parent_id)]


@students.post("", response_model=Envelope[StudentOut], status_code=201, name="add")
async def add_student(body: StudentIn, user: ParentUser, svc: ServicesDep) -> Reply:
    """Add a child."""
    return ok(await svc.tx(_add_student, parent_id=user.id, fields=body.model_dump()), "Student added")


def _add_student(session: Session, *, parent_id: uuid.UUID, fields: dict[str, Any]) -> StudentOut:
    student = service.add_student(session, parent_id=parent_id, fields=fields, now=utc_now())
    return StudentOut.model_validate(student)


@students.put("/{studentId}", response_model=Envelope[StudentOut], name="update")
async def update_student(student_id: StudentId, body: StudentIn, user: ParentUser, svc: ServicesDep) -> Reply:
    """Change one of your children."""
    student = await svc.tx(_update_student, parent_id=user.id, student_id=student_id, fields=body.model_dump())
    return ok(student, "Student updated")


def _update_student(
    session: Session, *, parent_id: uuid.UUID, student_id: uuid.UUID, fields: dict[str, Any]
) -> StudentOut:
    student = service.update_student(session, parent_id=parent_id, student_id=student_id, fields=fields)
    return StudentOut.model_validate(student)


@students.delete("/{studentId}", response_model=Envelope[bool], name="delete")
async def delete_student(student_id: StudentId, user: ParentUser, svc: ServicesDep) -> Reply:
    """Remove one of your children (refused while they have bookings)."""
    await svc.tx(reporting.delete_student, parent_id=user.id, student_id=student_id)
    return ok(True, "Student removed")
