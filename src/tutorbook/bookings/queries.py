"""The queries of the jobs and the operators: stale checkouts, ended sessions, the purge, counts,
the console's search (keyset pages, newest start first) and calendar conflicts."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.lists import PARENT_EMAIL, AnySelect, BookingRow, keyset, named_rows
from tutorbook.bookings.models import AdminAction, Payment, Refund, StatusHistory
from tutorbook.bookings.payment_states import PaymentKind
from tutorbook.bookings.repository import OWN_PAYMENT, PS
from tutorbook.calendars.models import BusyPeriod
from tutorbook.paging import Cursor


def _skip_locked(session: Session, stmt: AnySelect) -> AnySelect:
    """On PostgreSQL, lock the selected rows and skip ones another worker holds."""
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True, of=PS)
    return stmt


def _after(stmt: AnySelect, after: uuid.UUID | None) -> AnySelect:
    return stmt if after is None else stmt.where(PS.id > after)


class StaleRow(NamedTuple):
    """A stale Pending booking: its id, its Checkout Session (None if it never got one) and
    when it was made (its session was made just after)."""

    id: uuid.UUID
    checkout_id: str | None
    created_at: datetime


def stale_pending(
    session: Session, *, now: datetime, unopened_before: datetime, limit: int, after: uuid.UUID | None = None
) -> list[StaleRow]:
    """Pending bookings whose checkout expired by `now`, or that got no checkout at all and were
    made before `unopened_before`, by id (not a series' week waiting for its card charge)."""
    stmt = (
        sa.select(PS.id, Payment.stripe_checkout_id, PS.created_at)
        .outerjoin(Payment, OWN_PAYMENT)
        .where(
            PS.status == Status.PENDING,
            # A series' later week waits for its off-session charge, not for a checkout: the
            # series job, not this one, decides when it is given up (issue #29).
            sa.or_(Payment.kind.is_(None), Payment.kind != PaymentKind.OFF_SESSION.value),
            sa.or_(
                Payment.checkout_expires_at <= now,
                sa.and_(Payment.stripe_checkout_id.is_(None), PS.created_at <= unopened_before),
            ),
        )
    )
    stmt = _after(stmt, after).order_by(PS.id).limit(limit)
    return [StaleRow(*row) for row in session.execute(_skip_locked(session, stmt))]


def ended_confirmed(session: Session, *, now: datetime, limit: int, after: uuid.UUID | None = None) -> list[PS]:
    """Confirmed bookings whose end time has passed by `now`, by id."""
    stmt = sa.select(PS).where(PS.status == Status.CONFIRMED, PS.ends_at <= now)
    stmt = _after(stmt, after).order_by(PS.id).limit(limit)
    return list(session.scalars(_skip_locked(session, stmt)))


def _never_paid_cancelled(before: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        PS.status == Status.CANCELLED,
        PS.paid_at.is_(None),
        ~sa.exists().where(Payment.booking_id == PS.id, Payment.stripe_payment_intent_id.is_not(None)),
        PS.cancelled_at < before,
        ~sa.exists().where(Refund.session_id == PS.id),
    )


def purgeable_ids(session: Session, *, before: datetime, limit: int, after: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Never-paid Cancelled bookings (no payment, no refund) cancelled before `before`."""
    stmt = _after(sa.select(PS.id).where(_never_paid_cancelled(before)), after)
    return list(session.scalars(_skip_locked(session, stmt.order_by(PS.id).limit(limit))))


def delete_never_paid(session: Session, *, ids: list[uuid.UUID], before: datetime) -> list[uuid.UUID]:
    """Delete those of `ids` still never-paid Cancelled, with their history; the ids deleted."""
    stmt = sa.select(PS.id).where(PS.id.in_(ids), _never_paid_cancelled(before))
    doomed = list(session.scalars(stmt))
    if doomed:
        session.execute(sa.delete(StatusHistory).where(StatusHistory.session_id.in_(doomed)))
        session.execute(sa.delete(AdminAction).where(AdminAction.session_id.in_(doomed)))
        session.execute(sa.delete(PS).where(PS.id.in_(doomed)).execution_options(synchronize_session=False))
    return doomed


def count_by_status(session: Session) -> dict[str, int]:
    """Bookings by status name, every status present (0 when none)."""
    counts = dict(session.execute(sa.select(PS.status, sa.func.count()).group_by(PS.status)).tuples().all())
    return {status.label: int(counts.get(status, 0)) for status in Status}


@dataclass(frozen=True)
class Search:
    """The console's filters; None means any."""

    status: int | None = None
    teacher_id: uuid.UUID | None = None
    parent_id: uuid.UUID | None = None
    student_id: uuid.UUID | None = None
    starts_from: datetime | None = None
    starts_before: datetime | None = None
    stripe_id: str | None = None
    booking_id: uuid.UUID | None = None
    # By name or part of an email: the bookings of any of these teachers / parents / children,
    # and of `people` (users on either side) or `children` (a free-text search matches either).
    teacher_ids: tuple[uuid.UUID, ...] | None = None
    parent_ids: tuple[uuid.UUID, ...] | None = None
    people: tuple[uuid.UUID, ...] | None = None
    children: tuple[uuid.UUID, ...] | None = None


# The console's filters by the column each compares with `==` (or `>=` / `<` for the dates).
_SEARCH_EQUALS = {"status": PS.status, "teacher_id": PS.teacher_id, "parent_id": PS.parent_id,
                  "student_id": PS.student_id, "booking_id": PS.id}


def _stripe_kind(stripe_id: str) -> str:
    """Which column a Stripe id is looked up in: a checkout's, a payment's, or any (a refund's too)."""
    return "checkout" if stripe_id.startswith("cs_") else "payment" if stripe_id.startswith("pi_") else "any"


def search(session: Session, *, where: Search, after: Cursor | None, limit: int) -> Sequence[BookingRow]:
    """One page of BookingRows with `parent_email`, newest start first then by id, after the
    cursor (the last row of the previous page): a keyset page, as fast at the millionth row as at
    the first. `limit + 1` rows are read to tell whether another page follows."""
    values = {name: list(v) if isinstance(v, tuple) else v for name, v in asdict(where).items() if v is not None}
    params: dict[str, Any] = {**values, "rows": limit}
    if after is not None:
        params["after_starts"], params["after_id"] = after
    kind = _stripe_kind(where.stripe_id) if where.stripe_id is not None else None
    stmt = _search_statement(tuple(sorted(values)), kind, after is not None)
    return session.execute(stmt, params).mappings().all()


@functools.lru_cache(maxsize=512)
def _search_statement(filters: tuple[str, ...], stripe_kind: str | None, cursor: bool) -> sa.Select[Any]:
    """The search's statement for one combination of filters, built once with bound parameters
    (named after Search's fields): building and hashing it per request cost 1-1.5 ms of CPU."""
    conds: list[sa.ColumnElement[bool]] = [
        column == sa.bindparam(name, type_=column.type) for name, column in _SEARCH_EQUALS.items() if name in filters
    ]
    if "starts_from" in filters:
        conds.append(PS.starts_at >= sa.bindparam("starts_from", type_=PS.starts_at.type))
    if "starts_before" in filters:
        conds.append(PS.starts_at < sa.bindparam("starts_before", type_=PS.starts_at.type))
    for name, side in (("teacher_ids", PS.teacher_id), ("parent_ids", PS.parent_id)):
        if name in filters:
            conds.append(side.in_(sa.bindparam(name, expanding=True, type_=side.type)))
    anyone = []
    if "people" in filters:
        people = sa.bindparam("people", expanding=True, type_=PS.parent_id.type)
        anyone += [PS.parent_id.in_(people), PS.teacher_id.in_(people)]
    if "children" in filters:
        anyone.append(PS.student_id.in_(sa.bindparam("children", expanding=True, type_=PS.student_id.type)))
    if anyone:
        conds.append(sa.or_(*anyone))
    if stripe_kind is not None:
        # The booking's own payment is in the rows' FROM (_WITH_RECORDS).
        stripe_id = sa.bindparam("stripe_id", type_=Payment.stripe_checkout_id.type)
        if stripe_kind == "any":
            refunded = sa.select(Refund.session_id).where(Refund.stripe_refund_id == stripe_id)
            conds.append(
                sa.or_(
                    Payment.stripe_checkout_id == stripe_id,
                    Payment.stripe_payment_intent_id == stripe_id,
                    PS.id.in_(refunded.scalar_subquery()),
                )
            )
        else:
            column = Payment.stripe_checkout_id if stripe_kind == "checkout" else Payment.stripe_payment_intent_id
            conds.append(column == stripe_id)
    after = (sa.bindparam("after_starts", type_=PS.starts_at.type), sa.bindparam("after_id", type_=PS.id.type))
    stmt = named_rows(*conds).add_columns(PARENT_EMAIL.label("parent_email"))
    rows = sa.bindparam("rows", type_=sa.Integer, literal_execute=True)
    return keyset(stmt, after=after if cursor else None, limit=rows, newest_first=True)


def calendar_conflicts(
    session: Session, *, teacher_id: uuid.UUID, after: datetime, booking_ids: Sequence[uuid.UUID] | None = None
) -> list[tuple[PS, BusyPeriod]]:
    """The teacher's Confirmed sessions ending after `after` (or those of `booking_ids`) that
    overlap a busy period of their calendars, each with one such period (the earliest)."""
    where = [
        PS.teacher_id == teacher_id,
        PS.status == Status.CONFIRMED.value,
        PS.ends_at > after,
        BusyPeriod.ends_at > PS.starts_at,
        BusyPeriod.starts_at < PS.ends_at,
    ]
    if booking_ids is not None:
        where.append(PS.id.in_(list(booking_ids)))
    stmt = (
        sa.select(PS, BusyPeriod)
        .join(BusyPeriod, BusyPeriod.teacher_id == PS.teacher_id)
        .where(*where)
        .order_by(PS.starts_at, PS.id, BusyPeriod.starts_at, BusyPeriod.id)
    )
    first: dict[uuid.UUID, tuple[PS, BusyPeriod]] = {}
    for booking, period in session.execute(stmt).tuples():
        first.setdefault(booking.id, (booking, period))
    return list(first.values())


# The reconcile job's batch reads (by id, by recorded checkout id), 500 ids a query.
def by_checkout_ids(session: Session, checkout_ids: list[str]) -> dict[str, PS]:
    """Bookings keyed by their recorded checkout id, for the ids given."""
    out: dict[str, PS] = {}
    for start in range(0, len(checkout_ids), 500):
        chunk = checkout_ids[start : start + 500]
        stmt = (
            sa.select(PS)
            .join(Payment, OWN_PAYMENT)
            .options(sa.orm.contains_eager(PS.payment))
            .where(Payment.stripe_checkout_id.in_(chunk))
        )
        rows = session.scalars(stmt)
        out.update({b.checkout_id: b for b in rows if b.checkout_id is not None})
    return out


def by_ids(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, PS]:
    """Bookings keyed by id, for the ids given."""
    out: dict[uuid.UUID, PS] = {}
    for start in range(0, len(ids), 500):
        rows = session.scalars(sa.select(PS).where(PS.id.in_(ids[start : start + 500])))
        out.update({b.id: b for b in rows})
    return out
