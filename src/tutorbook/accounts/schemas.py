"""Account and student shapes for the API."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import EmailStr, Field, StringConstraints, field_validator

from tutorbook.schemas import CamelModel, InputModel, UtcDatetime

_ZONES = available_timezones()
# A password is kept exactly as typed: InputModel strips other strings, never this one.
Password = Annotated[str, StringConstraints(strip_whitespace=False)]


def check_zone(value: str) -> str:
    """An IANA time zone name, or ValueError."""
    if value not in _ZONES:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)")
    return value


class RegisterIn(InputModel):
    email: EmailStr
    password: Password = Field(min_length=8, max_length=1024)
    full_name: str = Field(min_length=1, max_length=200)
    role: Literal["Parent", "Teacher"]
    time_zone: str = "UTC"

    _zone = field_validator("time_zone")(classmethod(lambda cls, v: check_zone(v)))


class LoginIn(InputModel):
    email: str = Field(min_length=1, max_length=254)
    password: Password = Field(min_length=1, max_length=1024)


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
    full_name: str = Field(min_length=1, max_length=200)
    grade_level: str | None = Field(default=None, max_length=50)
    notes: str | None = Field(default=None, max_length=1000)


class StudentOut(CamelModel):
    id: uuid.UUID
    parent_id: uuid.UUID
    full_name: str
    grade_level: str | None
    notes: str | None
    created_at: UtcDatetime
