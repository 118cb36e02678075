"""Keyset pages of bookings: the cursor naming a page's last row, and splitting a page from the
row read past it. Shared by My Bookings, the teacher's schedule and the console's search.

A cursor is opaque to its callers (they pass back what they were given); inside it is the row's
start time and id, the order every booking list sorts by (the id breaks ties)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from tutorbook.clock import iso_z
from tutorbook.errors import Unprocessable
from tutorbook.validation import in_range

# (starts_at, id) of a page's last row.
Cursor = tuple[datetime, uuid.UUID]
Row = TypeVar("Row")


def encode_cursor(starts_at: datetime, booking_id: uuid.UUID) -> str:
    """The cursor of the row (starts_at, booking_id)."""
    return f"{iso_z(starts_at)}~{booking_id}"


def decode_cursor(value: str | None, *, field: str = "after") -> Cursor | None:
    """The (starts_at, id) in a cursor; None for none; a 422 naming `field` when it is not one."""
    if not value:
        return None
    try:
        starts, booking_id = value.split("~", 1)
        return in_range(datetime.fromisoformat(starts.replace("Z", "+00:00"))), uuid.UUID(booking_id)
    except (ValueError, OverflowError) as exc:
        raise Unprocessable("This page link is broken", data=[{"field": field, "message": "bad cursor"}]) from exc


def split_page(rows: Sequence[Row], limit: int, key: Callable[[Row], Cursor]) -> tuple[list[Row], str | None]:
    """(the page, the next page's cursor) from the `limit + 1` rows a keyset query read: the
    extra row only says that another page follows (cursor None: this is the last page)."""
    page = list(rows[:limit])
    return page, (encode_cursor(*key(page[-1])) if len(rows) > limit and page else None)
