"""Shared pydantic bases: camelCase JSON, the response envelope, pages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from tutorbook.clock import as_utc

T = TypeVar("T")

# Held in UTC once validated, so pydantic's own (compiled) serializer writes ISO 8601 with a
# trailing Z: "2026-01-02T03:04:05Z", as clock.iso_z does, without a Python call per field.
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class CamelModel(BaseModel):
    """Output model: snake_case in Python, camelCase in JSON."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class InputModel(CamelModel):
    """Request body: camelCase, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )


class Envelope(BaseModel, Generic[T]):
    """Every response: {success, message, data}."""

    success: bool = True
    message: str = "OK"
    data: T | None = None


class ErrorEnvelope(BaseModel):
    success: bool = False
    message: str
    data: list[dict[str, Any]] | dict[str, Any] | None = None


class Page(CamelModel, Generic[T]):
    items: list[T]
    page: int
    page_size: int
    total: int


_ERROR_TEXT = {
    400: "Malformed body, or not possible in the current state",
    401: "Not logged in, or the token expired",
    403: "Logged in, but not allowed",
    404: "Not found",
    409: "Conflicts with existing data",
    413: "Body too large",
    422: "Invalid input; `data` lists the fields",
    429: "Too many attempts; see Retry-After",
    502: "The payment provider failed; nothing was charged",
    504: "The payment provider timed out; nothing was charged",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes, all in the envelope."""
    return {code: {"model": ErrorEnvelope, "description": _ERROR_TEXT[code]} for code in codes}


# What a route returns: the envelope as a dict, validated by the route's `response_model`.
Reply = dict[str, object]


def ok(data: object = None, message: str = "OK") -> Reply:
    """A success envelope."""
    return {"success": True, "message": message, "data": data}
