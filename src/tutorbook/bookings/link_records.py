"""A booking's meeting link row (issue #27's `meeting_links`): every write of it. The link itself is
made by a provider (`tutorbook.meetings`); what it answered is stored here. Core statements, built
once per set of columns, like the other records' (`records.py`)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from tutorbook.bookings.models import Booking, MeetingLink

LINKS = cast(sa.Table, MeetingLink.__table__)
_FOR_BOOKING = LINKS.c.booking_id == sa.bindparam("set_booking_id", type_=LINKS.c.booking_id.type)


@functools.lru_cache(maxsize=64)
def _statement(kind: str, columns: tuple[str, ...], dialect: str = "") -> sa.Executable:
    values = {c: sa.bindparam(f"set_{c}", type_=LINKS.c[c].type) for c in columns}
    if kind == "insert":  # a booking's link row, made unless it has one
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        return insert(LINKS).values(values).on_conflict_do_nothing(index_elements=["booking_id"])
    if kind == "update_without_url":
        return sa.update(LINKS).where(_FOR_BOOKING, LINKS.c.url.is_(None)).values(values)
    return sa.update(LINKS).where(_FOR_BOOKING).values(values)


def _rowcount(session: Session, stmt: sa.Executable, params: dict[str, Any]) -> int:
    # An INSERT or UPDATE without RETURNING gives a CursorResult (Session.execute is typed as the plain Result).
    return int(cast(sa.CursorResult[Any], session.execute(stmt, params)).rowcount)


def write_link(
    session: Session,
    booking_id: uuid.UUID,
    values: Mapping[str, Any],
    *,
    without_url: bool,
    booking: Booking | None = None,
) -> int:
    """Set a booking's link columns (making its row if it has none), only while it has no link
    when `without_url`; how many rows changed (0 or 1). `booking` (loaded in this transaction,
    without a link row yet: one just made) gets the row it was given, with no read back."""
    columns = tuple(sorted(values))
    params = {f"set_{c}": v for c, v in values.items()} | {"set_booking_id": booking_id}
    dialect = session.get_bind().dialect.name
    if _rowcount(session, _statement("insert", (*columns, "booking_id"), dialect), params) == 1:
        if booking is not None:
            set_committed_value(booking, "meeting", MeetingLink(booking_id=booking_id, **values))
        return 1
    kind = "update_without_url" if without_url else "update"
    return _rowcount(session, _statement(kind, columns), params)


def known(booking: Booking, values: Mapping[str, Any]) -> None:
    """`booking` (new, written in this transaction with its link row: a credit booking's one
    statement) gets the row it was given, with no read back."""
    set_committed_value(booking, "meeting", MeetingLink(booking_id=booking.id, **values))


def clear_link(session: Session, booking_id: uuid.UUID) -> None:
    """Forget a booking's link and its retries (a new one is made)."""
    session.execute(sa.delete(LINKS).where(LINKS.c.booking_id == booking_id))
