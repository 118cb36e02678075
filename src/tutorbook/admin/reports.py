"""The seed's "Database Verification Queries" in SQLAlchemy (SQLite and PostgreSQL alike),
and the reconciliation report (reconcile as a dry run)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook import jobs
from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.models import Booking as PS
from tutorbook.bookings.models import Payment
from tutorbook.bookings.payment_states import PaymentKind
from tutorbook.flows.services import Services
from tutorbook.jobs.result import Progress

STATUS_VALUES = [s.value for s in Status]


def orphaned(session: Session, *, now: datetime, older_than: timedelta, limit: int = 1000) -> list[PS]:
    """Pending, never paid, created more than `older_than` before `now`; newest first.

    The expire job cancels these once their checkout expires (30 min by default), so rows here
    mean the jobs are not running or Stripe could not be reached."""
    stmt = (
        sa.select(PS)
        .where(
            PS.status == Status.PENDING,
            PS.paid_at.is_(None),
            PS.created_at < now - older_than,
            # A weekly series' lesson waiting for its card charge is held on purpose (issue #29).
            ~sa.exists().where(Payment.booking_id == PS.id, Payment.kind == PaymentKind.OFF_SESSION.value),
        )
        .order_by(PS.created_at.desc(), PS.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def invalid_statuses(conn: Session | sa.Connection, *, table: sa.FromClause = PS.__table__) -> list[dict[str, Any]]:
    """Rows whose status is not 0-3 (NULL included), grouped by id and status.

    The CHECK constraint makes this empty on Tutorbook's own table; `table` lets a test point
    it at one without the constraint to show that it finds what it should. The status is read
    as the plain number it is: a Status cannot hold the values this report is looking for."""
    stmt = (
        sa.select(
            table.c.id,
            sa.type_coerce(table.c.status, sa.SmallInteger).label("status"),
            sa.func.count().label("count"),
        )
        .where(sa.or_(table.c.status.not_in(STATUS_VALUES), table.c.status.is_(None)))
        .group_by(table.c.id, table.c.status)
        .order_by(table.c.id)
    )
    return [dict(row._mapping) for row in conn.execute(stmt)]


def reconciliation(
    svc: Services, *, now: datetime, since: datetime | None = None, progress: Progress | None = None
) -> jobs.JobResult:
    """Mismatches between Stripe and the database, changing nothing; none is the healthy answer."""
    return jobs.run("reconcile", svc, now=now, dry_run=True, since=since, progress=progress)
