"""The teacher list's HTTP side: filters, the name cursor, the ETag, the rendered answer."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
import zlib
from typing import Any

from fastapi import Request

from tutorbook.errors import Unprocessable
from tutorbook.schemas import Envelope
from tutorbook.teachers.schemas import TeacherOut

Position = tuple[str, uuid.UUID]  # (full name, id) of a page's last teacher
_ENVELOPE = Envelope[list[TeacherOut]]


def encode_after(teacher: TeacherOut) -> str:
    raw = json.dumps([teacher.full_name, str(teacher.id)], ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_after(value: str | None) -> Position | None:
    """The (name, id) a cursor names; None for none; 422 naming `after` when it is not one."""
    if not value:
        return None
    try:
        name, teacher_id = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        if not isinstance(name, str):
            raise ValueError(name)
        return name, uuid.UUID(teacher_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise Unprocessable("This page link is broken", data=[{"field": "after", "message": "bad cursor"}]) from exc


def select(
    teachers: list[TeacherOut],
    *,
    subject: str | None,
    min_rate: int | None,
    max_rate: int | None,
    page_size: int | None,
    after: Position | None,
) -> tuple[list[TeacherOut], str | None]:
    """The teachers that match, from after `after`, at most `page_size` (all without), and the
    next page's cursor (None on the last page)."""
    wanted = subject.lower() if subject else None
    out = [
        t
        for t in teachers
        if (wanted is None or any(s.lower() == wanted for s in t.subjects))
        and (min_rate is None or t.hourly_rate >= min_rate)
        and (max_rate is None or t.hourly_rate <= max_rate)
        and (after is None or (t.full_name, t.id) > after)
    ]
    if page_size is None or len(out) <= page_size:
        return out, None
    return out[:page_size], encode_after(out[page_size - 1])


def etag(version: int, query: Any) -> str:
    """The answer's ETag: the list's version and the query it answers."""
    return f'"t{version}-{zlib.crc32(repr(query).encode()):08x}"'


def if_none_match(request: Request) -> list[str]:
    header = request.headers.get("if-none-match", "")
    return [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]


def cache_control(max_age: int) -> str:
    """`no-cache` (revalidate every time: a change shows at once) unless a max age is set."""
    return f"public, max-age={max_age}" if max_age > 0 else "public, no-cache"


def render(page: list[TeacherOut]) -> bytes:
    """The envelope as JSON bytes (as FastAPI would write it for the response model)."""
    return _ENVELOPE(success=True, message="OK", data=page).model_dump_json(by_alias=True).encode()
