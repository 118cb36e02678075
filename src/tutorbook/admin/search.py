"""The console's booking search: the filters as typed (a status, a teacher or parent by email or
name, a child, dates on the admin's clock, one query box for ids and Stripe ids), checked and
turned into a `queries.Search`, and its keyset pages."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook import paging
from tutorbook.accounts.models import Student, User
from tutorbook.bookings import queries
from tutorbook.bookings.lifecycle import Status
from tutorbook.errors import Unprocessable
from tutorbook.identity import Role
from tutorbook.validation import MAX_YEAR, MIN_YEAR, day_in_range, is_single_line

PAGE_SIZE = 25


MAX_PEOPLE = 200  # people a name or part of an email may match before the search asks for more


def _like(text: str) -> str:
    """A LIKE pattern for "contains `text`" (any case: the caller lowers the column)."""
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _users_matching(session: Session, text: str, *, role: Role | None, field_name: str) -> tuple[uuid.UUID, ...]:
    """Users whose email or name contains `text` (any case); 422 when too many match."""
    stmt = sa.select(User.id).where(
        sa.or_(User.email.like(_like(text), escape="\\"), sa.func.lower(User.full_name).like(_like(text), escape="\\"))
    )
    if role is not None:
        stmt = stmt.where(User.role == role)
    found = tuple(session.scalars(stmt.limit(MAX_PEOPLE + 1)))
    if len(found) > MAX_PEOPLE:
        raise Unprocessable(
            f"More than {MAX_PEOPLE} people match {text!r}: type more of the name or email",
            data=[{"field": field_name, "message": "too many matches"}],
        )
    return found


def _user_ids(session: Session, value: str, *, role: Role, field_name: str) -> tuple[uuid.UUID, ...]:
    """A teacher or parent by id, email, name or part of an email or name (all who match)."""
    value = value.strip()
    if not is_single_line(value, max_length=254):
        raise Unprocessable(
            f"Give the {role.lower()}'s name, email or id", data=[{"field": field_name, "message": "not one line"}]
        )
    try:
        return (uuid.UUID(value),)
    except ValueError:
        pass
    exact = session.scalar(sa.select(User.id).where(User.email == value.lower(), User.role == role))
    if exact is not None:
        return (exact,)
    found = _users_matching(session, value, role=role, field_name=field_name)
    if not found:
        what = f"with the email {value}" if "@" in value else f"whose name or email contains {value!r}"
        raise Unprocessable(f"No {role.lower()} {what}", data=[{"field": field_name, "message": "not found"}])
    return found


def _people(session: Session, text: str) -> dict[str, Any]:
    """A free-text search: parents and teachers by name or part of an email, children by name."""
    users = _users_matching(session, text, role=None, field_name="q")
    kids = tuple(
        session.scalars(
            sa.select(Student.id).where(sa.func.lower(Student.full_name).like(_like(text), escape="\\")).limit(
                MAX_PEOPLE + 1
            )
        )
    )
    if len(kids) > MAX_PEOPLE:
        raise Unprocessable(
            f"More than {MAX_PEOPLE} children match {text!r}: type more of the name",
            data=[{"field": "q", "message": "too many matches"}],
        )
    # Nobody matches: a search that finds nothing (an empty IN would be refused by some drivers).
    return {"people": users or (uuid.UUID(int=0),), "children": kids or (uuid.UUID(int=0),)}


def _date(value: str | date, zone: str, field_name: str) -> datetime:
    try:
        day = value if isinstance(value, date) else day_in_range(date.fromisoformat(value.strip()))
    except ValueError as exc:
        raise Unprocessable(
            f"Dates are YYYY-MM-DD, in the years {MIN_YEAR} to {MAX_YEAR}",
            data=[{"field": field_name, "message": "not a date in range"}],
        ) from exc
    return datetime.combine(day, time(), ZoneInfo(zone))


def parse_search(
    session: Session,
    *,
    zone: str,
    status: str | None = None,
    teacher: str | None = None,
    parent: str | None = None,
    child: str | None = None,
    date_from: str | date | None = None,
    date_to: str | date | None = None,
    q: str | None = None,
) -> queries.Search:
    """The console's filters from a form: teacher and parent by id, email, name or part of either
    (every one who matches), the child by id, dates (inclusive) in the operator's zone, `q` a
    booking id, a Stripe id (checkout session, payment intent or refund), or a name or part of an
    email of a parent, teacher or child. 422 for what cannot be understood."""
    fields: dict[str, Any] = {}
    if status not in (None, ""):
        if status not in {str(s.value) for s in Status}:
            raise Unprocessable("Unknown status", data=[{"field": "status", "message": "0, 1, 2 or 3"}])
        fields["status"] = int(status)
    for name, value, role in (("teacher", teacher, Role.TEACHER), ("parent", parent, Role.PARENT)):
        if value and value.strip():
            ids = _user_ids(session, value, role=role, field_name=name)
            if len(ids) == 1:
                fields[f"{name}_id"] = ids[0]
            else:
                fields[f"{name}_ids"] = ids
    if child and child.strip():
        try:
            fields["student_id"] = uuid.UUID(child.strip())
        except ValueError as exc:
            raise Unprocessable("The child is given by id", data=[{"field": "child", "message": "not an id"}]) from exc
    if isinstance(date_from, date) or (date_from and date_from.strip()):
        fields["starts_from"] = _date(date_from, zone, "from")
    if isinstance(date_to, date) or (date_to and date_to.strip()):
        fields["starts_before"] = _date(date_to, zone, "to") + timedelta(days=1)
    if q and q.strip():
        fields.update(_query(session, q.strip()))
    return queries.Search(**fields)


STRIPE_PREFIXES = ("cs_", "pi_", "re_", "ch_", "py_", "pyr_", "tr_", "fee_", "in_", "evt_")


def _query(session: Session, text: str) -> dict[str, Any]:
    """`q`: a booking id, a Stripe id (by its prefix), else a name or part of an email."""
    if not is_single_line(text, max_length=255):
        raise Unprocessable("Search by one line of text", data=[{"field": "q", "message": "no control characters"}])
    try:
        return {"booking_id": uuid.UUID(text)}
    except ValueError:
        pass
    if text.startswith(STRIPE_PREFIXES) and not any(ch.isspace() for ch in text):
        return {"stripe_id": text}
    return _people(session, " ".join(text.split()))


def search_page(
    session: Session, *, search: queries.Search, after: str | None, limit: int = PAGE_SIZE
) -> tuple[list[sa.RowMapping], str | None]:
    """(BookingRows with `parent_email`, the next page's cursor or None)."""
    rows = queries.search(session, where=search, after=paging.decode_cursor(after), limit=limit)
    return paging.split_page(rows, limit, lambda row: (row["starts_at"], row["id"]))
