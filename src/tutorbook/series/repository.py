"""Every query and write of the series tables: a series, its occurrences with their bookings, the
weeks due for their card charge or past their deadline, the invite's SEQUENCE."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.models import Booking, Payment, StatusHistory
from tutorbook.bookings.payment_states import PaymentKind, PaymentState
from tutorbook.bookings.repository import OWN_PAYMENT
from tutorbook.series.models import Occurrence, Series


def get(session: Session, series_id: uuid.UUID) -> Series | None:
    return session.get(Series, series_id)


def of_booking(session: Session, booking_id: uuid.UUID) -> tuple[Series, Occurrence] | None:
    """The series a booking belongs to, with its occurrence row, or None for a lone booking."""
    row = session.execute(
        sa.select(Series, Occurrence)
        .join(Occurrence, Occurrence.series_id == Series.id)
        .where(Occurrence.booking_id == booking_id)
    ).first()
    return None if row is None else (row[0], row[1])


def occurrences(session: Session, series_id: uuid.UUID) -> list[tuple[Occurrence, Booking]]:
    """The series' occurrences with their bookings (and records), by week."""
    stmt = (
        sa.select(Occurrence, Booking)
        .join(Booking, Booking.id == Occurrence.booking_id)
        .where(Occurrence.series_id == series_id)
        .order_by(Occurrence.week)
    )
    return [(o, b) for o, b in session.execute(stmt).unique()]


def sequence(session: Session, series_id: uuid.UUID) -> int:
    """The invite's SEQUENCE: the history rows of the series' bookings past their first ones. Every
    change of an occurrence (paid, moved, cancelled) adds a row, so it only ever grows."""
    rows = session.scalar(
        sa.select(sa.func.count())
        .select_from(StatusHistory)
        .join(Occurrence, Occurrence.booking_id == StatusHistory.session_id)
        .where(Occurrence.series_id == series_id, StatusHistory.from_status.is_not(None))
    )
    return int(rows or 0)


def add(session: Session, series: Series, occurrences: Sequence[dict[str, Any]]) -> None:
    """Insert a series and its occurrences (their bookings are inserted first)."""
    session.add(series)
    session.flush()
    session.execute(sa.insert(Occurrence), [{"series_id": series.id, **o} for o in occurrences])


def _reserved() -> sa.ColumnElement[bool]:
    """A card series' week still Pending on its open off-session payment."""
    return sa.and_(
        Booking.status == Status.PENDING,
        Payment.kind == PaymentKind.OFF_SESSION.value,
        Payment.state == PaymentState.OPEN.value,
    )


def due_charges(session: Session, *, now: datetime, limit: int) -> list[tuple[Occurrence, Booking, Series]]:
    """Reserved weeks whose charge is due by `now` and not yet tried, by due time."""
    stmt = (
        sa.select(Occurrence, Booking, Series)
        .join(Booking, Booking.id == Occurrence.booking_id)
        .join(Payment, OWN_PAYMENT)
        .join(Series, Series.id == Occurrence.series_id)
        .where(_reserved(), Occurrence.charge_due_at <= now, Occurrence.charge_attempted_at.is_(None))
        .order_by(Occurrence.charge_due_at, Occurrence.booking_id)
        .limit(limit)
    )
    return [(o, b, s) for o, b, s in session.execute(stmt).unique()]


def overdue(session: Session, *, now: datetime, limit: int) -> list[uuid.UUID]:
    """Weeks whose charge failed and which were not paid by their deadline."""
    stmt = (
        sa.select(Booking.id)
        .join(Occurrence, Occurrence.booking_id == Booking.id)
        .join(Payment, OWN_PAYMENT)
        .where(_reserved(), Occurrence.pay_deadline_at <= now)
        .order_by(Occurrence.pay_deadline_at, Booking.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def first_booking(session: Session, series_id: uuid.UUID) -> Booking | None:
    """The series' first held week (the one paid at Checkout)."""
    stmt = (
        sa.select(Booking)
        .join(Occurrence, Occurrence.booking_id == Booking.id)
        .where(Occurrence.series_id == series_id)
        .order_by(Occurrence.week)
        .limit(1)
    )
    return session.scalars(stmt).first()


def claim(session: Session, *, booking_id: uuid.UUID, now: datetime) -> bool:
    """Claim a week's charge before calling Stripe: once, by compare-and-set on
    `charge_attempted_at` (two workers never both charge a week)."""
    done = session.execute(
        sa.update(Occurrence)
        .where(Occurrence.booking_id == booking_id, Occurrence.charge_attempted_at.is_(None))
        .values(charge_attempted_at=now)
    )
    return bool(getattr(done, "rowcount", 0))


def unclaim(session: Session, *, booking_id: uuid.UUID) -> None:
    """Stripe could not be reached: the next run tries again (its idempotency key charges once)."""
    session.execute(sa.update(Occurrence).where(Occurrence.booking_id == booking_id).values(charge_attempted_at=None))


def set_failure(session: Session, *, booking_id: uuid.UUID, failure: str, deadline: datetime) -> None:
    """The charge failed (declined, or the bank wants the parent): the deadline of the link to pay."""
    session.execute(
        sa.update(Occurrence)
        .where(Occurrence.booking_id == booking_id)
        .values(charge_failure=failure, pay_deadline_at=deadline)
    )


def customer_of(session: Session, *, parent_id: uuid.UUID) -> str | None:
    """The Stripe Customer an earlier card series of this parent made, if any (one per parent)."""
    return session.scalar(
        sa.select(Series.stripe_customer_id)
        .where(Series.parent_id == parent_id, Series.stripe_customer_id.is_not(None))
        .order_by(Series.created_at)
        .limit(1)
    )


def set_customer(session: Session, *, series_id: uuid.UUID, customer: str) -> None:
    session.execute(sa.update(Series).where(Series.id == series_id).values(stripe_customer_id=customer))


def series_ids(session: Session, booking_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """booking id -> its series' id, for those of `booking_ids` in a series (the lists' grouping)."""
    if not booking_ids:
        return {}
    stmt = sa.select(Occurrence.booking_id, Occurrence.series_id).where(Occurrence.booking_id.in_(list(booking_ids)))
    return {b: s for b, s in session.execute(stmt)}


def abandoned(session: Session, *, limit: int) -> list[uuid.UUID]:
    """Reserved weeks of card series whose first week was cancelled unpaid (no card was saved:
    nothing can pay them), by id."""
    first = sa.orm.aliased(Occurrence)
    first_booking = sa.orm.aliased(Booking)
    weeks = sa.orm.aliased(Occurrence)
    earliest = (
        sa.select(sa.func.min(weeks.week))
        .where(weeks.series_id == Occurrence.series_id)
        .correlate(Occurrence)
        .scalar_subquery()
    )
    stmt = (
        sa.select(Booking.id)
        .join(Occurrence, Occurrence.booking_id == Booking.id)
        .join(Payment, OWN_PAYMENT)
        .join(first, sa.and_(first.series_id == Occurrence.series_id, first.week == earliest))
        .join(first_booking, first_booking.id == first.booking_id)
        .where(
            _reserved(),
            first_booking.status == Status.CANCELLED,
            first_booking.paid_at.is_(None),
        )
        .order_by(Booking.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))
