"""Shared pydantic bases: camelCase JSON, the response envelope, pages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel

from tutorbook.clock import iso_z

T = TypeVar("T")

UtcDatetime = Annotated[datetime, PlainSerializer(iso_z, return_type=str)]


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
    data: list[dict] | dict | None = None


class Page(CamelModel, Generic[T]):
    items: list[T]
    page: int
    page_size: int
    total: int


def ok(data=None, message: str = "OK") -> dict:
    """A success envelope."""
    return {"success": True, "message": message, "data": data}
