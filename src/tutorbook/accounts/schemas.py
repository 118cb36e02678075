"""Account and student shapes for the API."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, field_validator

from tutorbook.schemas import CamelModel, InputModel, UtcDatetime
from tutorbook.validation import Email, LoginEmail, Secret, crlf_to_lf, multi_line, single_line

_ZONES = available_timezones()
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(single_line)]
Zone = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(single_line)]
Grade = Annotated[str, StringConstraints(max_length=50), AfterValidator(single_line)]
Notes = Annotated[str, StringConstraints(max_length=1000), BeforeValidator(crlf_to_lf), AfterValidator(multi_line)]


def check_zone(value: str) -> str:
    """An IANA time zone name, or ValueError."""
    if value not in _ZONES:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)")
    return value


class RegisterIn(InputModel):
    email: Email
    password: Secret = Field(min_length=8, max_length=1024)
    full_name: Name
    role: Literal["Parent", "Teacher"]
    time_zone: Zone = "UTC"

    _zone = field_validator("time_zone")(classmethod(lambda cls, v: check_zone(v)))


class LoginIn(InputModel):
    email: LoginEmail
    password: Secret = Field(min_length=1, max_length=1024)


class UserOut(CamelModel):
    id: uuid.UUID
    email: str
    full_name: str
    role: str
    time_zone: str
    created_at: UtcDatetime


class LoginOut(CamelModel):
    token: str
    token_type: str = "Bearer"
    expires_in: int
    user: UserOut


class StudentIn(InputModel):
    full_name: Name
    grade_level: Grade | None = None
    notes: Notes | None = None


class StudentOut(CamelModel):
    id: uuid.UUID
    parent_id: uuid.UUID
    full_name: str
    grade_level: str | None
    notes: str | None
    created_at: UtcDatetime
