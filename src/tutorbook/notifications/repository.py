"""The outbox's DB side: enqueue in the caller's transaction, claim a batch, record the outcome.

A row is `pending` until a worker claims it (`sending`, with a lease and a claim id), then
`sent`, `skipped` (no longer true, e.g. paid meanwhile), `failed` (refused for good or out of
attempts) or `pending` again with a later `next_attempt_at`. Claiming takes rows with
FOR UPDATE SKIP LOCKED on PostgreSQL (SQLite has one writer at a time), so two workers never
take the same row; recording is a compare-and-set on the claim id."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tutorbook import tracing
from tutorbook.notifications.models import DevMail, Notification

PENDING, SENDING, SENT, FAILED, SKIPPED = "pending", "sending", "sent", "failed", "skipped"
N = Notification


_ENQUEUED = ("id", "booking_id", "user_id", "kind", "version", "to_address", "payload", "status", "attempts",
             "next_attempt_at", "created_at", "updated_at", "trace_parent")


def _enqueue_statement(dialect: str) -> sa.Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = cast(sa.Table, N.__table__)
    values = {name: sa.bindparam(name, type_=table.c[name].type) for name in _ENQUEUED}
    return insert(table).values(values).on_conflict_do_nothing().returning(table.c.id)


# Built once (Core, not the ORM's bulk-insert machinery): a confirmation writes two rows per payment.
_ENQUEUE = {dialect: _enqueue_statement(dialect) for dialect in ("postgresql", "sqlite")}
# The mail worker LISTENs on this channel (jobs/wakeup.py). NOTIFY is transactional: PostgreSQL
# delivers it when the enqueuing transaction commits, and not at all if it rolls back.
CHANNEL = "tutorbook_outbox"
_NOTIFY = sa.text(f"SELECT pg_notify('{CHANNEL}', '')")


_WAKE_WITH_AT_MOST = 8  # rows: one statement per row count (a booking's notices are one or two)


@functools.lru_cache(maxsize=_WAKE_WITH_AT_MOST)
def _enqueue_and_wake(n: int) -> sa.Select[Any]:
    """PostgreSQL: `n` rows (binds `<column>_<i>`) added unless there already, and pg_notify for
    each added: WITH added AS (INSERT ... SELECT ... RETURNING id) SELECT id, pg_notify(...) FROM
    added. Rows as a UNION ALL of SELECTs: a multi-row VALUES is compiled again on every call."""
    table = cast(sa.Table, N.__table__)
    # Typed binds (the SELECT has no column to take a type from); the foreign keys' own types may
    # not be resolved yet when this is built.
    types = {name: table.c[name].type for name in _ENQUEUED} | {"booking_id": sa.Uuid(), "user_id": sa.Uuid()}
    rows = [sa.select(*(sa.bindparam(f"{c}_{i}", type_=types[c]) for c in _ENQUEUED)) for i in range(n)]
    source = sa.union_all(*rows) if n > 1 else rows[0]
    inserted = postgresql.insert(table).from_select(list(_ENQUEUED), source).on_conflict_do_nothing()
    added = inserted.returning(table.c.id).cte("added")
    return sa.select(added.c.id, sa.func.pg_notify(CHANNEL, ""))


def _wake_workers(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_NOTIFY)


@dataclass(frozen=True)
class Notice:
    """One notification to add: to whom, of what kind, and what its email needs."""

    user_id: uuid.UUID
    to: str
    kind: str
    payload: dict[str, Any]


def enqueue_many(
    session: Session,
    notices: list[Notice],
    *,
    booking_id: uuid.UUID | None,
    version: int,
    now: datetime,
    not_before: datetime | None = None,
) -> int:
    """Add each notification unless (booking, kind, version) has one already, in one statement;
    how many were added."""
    if not notices:
        return 0
    rows = rows_for(notices, booking_id=booking_id, version=version, now=now, not_before=not_before)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and not _due_later(not_before, now) and len(rows) <= _WAKE_WITH_AT_MOST:
        # One statement: the rows and, for each that went in, the workers' wake-up (delivered
        # once, at commit: PostgreSQL folds a transaction's identical notifications into one).
        params = {f"{name}_{i}": value for i, row in enumerate(rows) for name, value in row.items()}
        return len(session.execute(_enqueue_and_wake(len(rows)), params).all())
    # RETURNING tells which rows went in (rowcount is -1 for such inserts on PostgreSQL); an
    # executemany with RETURNING is sent as one INSERT ... VALUES (...), (...) by SQLAlchemy.
    added = len(session.execute(_ENQUEUE[dialect], rows).all())
    if added and not _due_later(not_before, now):
        _wake_workers(session)
    return added


def rows_for(
    notices: list[Notice], *, booking_id: uuid.UUID | None, version: int, now: datetime, not_before: datetime | None
) -> list[dict[str, Any]]:
    """The outbox rows `enqueue_many` adds for these notices (a caller that writes them with a
    statement of its own, e.g. a credit booking's one statement, sends the wake-up with them)."""
    trace = tracing.traceparent()
    return [
        {
            "id": uuid.uuid4(),
            "booking_id": booking_id,
            "user_id": n.user_id,
            "kind": n.kind,
            "version": version,
            "to_address": n.to,
            "payload": n.payload,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": not_before or now,
            "created_at": now,
            "updated_at": now,
            "trace_parent": trace,
        }
        for n in notices
    ]


def _due_later(not_before: datetime | None, now: datetime) -> bool:
    """A notice due later (a reminder's time) wakes nobody now; polling finds it when due."""
    return not_before is not None and not_before > now


def enqueue(
    session: Session,
    *,
    booking_id: uuid.UUID | None,
    user_id: uuid.UUID,
    to: str,
    kind: str,
    version: int,
    payload: dict[str, Any],
    now: datetime,
    not_before: datetime | None = None,
) -> bool:
    """Add a notification unless (booking, kind, version) has one already; True when added."""
    notice = Notice(user_id=user_id, to=to, kind=kind, payload=payload)
    return enqueue_many(session, [notice], booking_id=booking_id, version=version, now=now, not_before=not_before) == 1


@dataclass(frozen=True)
class Claimed:
    """A notification a worker holds until `lease` ends."""

    id: uuid.UUID
    claim: str
    booking_id: uuid.UUID | None
    user_id: uuid.UUID
    kind: str
    version: int
    to: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    trace_parent: str | None = None  # the trace of the change that wrote it (tracing on)


def claim(session: Session, *, now: datetime, limit: int, lease: timedelta) -> list[Claimed]:
    """Take up to `limit` due notifications: pending and due, or sending with an expired lease
    (a worker that died mid-batch)."""
    due = sa.or_(
        sa.and_(N.status == PENDING, N.next_attempt_at <= now),
        sa.and_(N.status == SENDING, N.claimed_until < now),
    )
    stmt = sa.select(N).where(due).order_by(N.next_attempt_at, N.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(session.scalars(stmt))
    out = []
    for row in rows:
        token = str(uuid.uuid4())
        row.status, row.claim, row.claimed_until = SENDING, token, now + lease
        row.attempts += 1
        row.updated_at = now
        out.append(
            Claimed(
                row.id,
                token,
                row.booking_id,
                row.user_id,
                row.kind,
                row.version,
                row.to_address,
                dict(row.payload),
                row.attempts,
                row.created_at,
                row.trace_parent,
            )
        )
    session.flush()
    return out


def _finish(session: Session, item: Claimed, *, now: datetime, **values: Any) -> bool:
    result = session.execute(
        sa.update(N)
        .where(N.id == item.id, N.status == SENDING, N.claim == item.claim)
        .values(updated_at=now, claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def mark_sent(session: Session, item: Claimed, *, now: datetime, payload: dict[str, Any] | None = None) -> bool:
    extra = {"payload": payload} if payload is not None else {}
    return _finish(session, item, now=now, status=SENT, sent_at=now, last_error=None, **extra)


def mark_skipped(
    session: Session, item: Claimed, *, now: datetime, why: str, payload: dict[str, Any] | None = None
) -> bool:
    extra = {"payload": payload} if payload is not None else {}
    return _finish(session, item, now=now, status=SKIPPED, last_error=why[:500], **extra)


def mark_failed(
    session: Session, item: Claimed, *, now: datetime, error: str, payload: dict[str, Any] | None = None
) -> bool:
    extra = {"payload": payload} if payload is not None else {}
    return _finish(session, item, now=now, status=FAILED, last_error=error[:500], **extra)


def retry_later(
    session: Session, item: Claimed, *, now: datetime, at: datetime, error: str, count: bool = True
) -> bool:
    """Back to pending until `at`; `count=False` gives the attempt back (a wait, not a failure)."""
    attempts = item.attempts if count else item.attempts - 1
    return _finish(
        session, item, now=now, status=PENDING, next_attempt_at=at, last_error=error[:500], attempts=attempts
    )


def release(session: Session, item: Claimed, *, now: datetime) -> bool:
    """Give a claimed row back unsent (a worker stopping): pending and due at once for the next
    worker, its attempt not counted."""
    released = _finish(session, item, now=now, status=PENDING, attempts=item.attempts - 1)
    if released:
        _wake_workers(session)
    return released


def supersede(
    session: Session, *, booking_id: uuid.UUID, kinds: tuple[str, ...], now: datetime
) -> list[dict[str, Any]]:
    """Skip the booking's notices of `kinds` that are still waiting to be sent (a later change
    tells the same people of its latest state); their payloads."""
    stmt = (
        sa.update(N)
        .where(N.booking_id == booking_id, N.kind.in_(kinds), N.status == PENDING)
        .values(status=SKIPPED, last_error="superseded by a later change", updated_at=now)
        .returning(N.payload)
        .execution_options(synchronize_session=False)
    )
    return [dict(payload) for payload in session.scalars(stmt)]


def keep(session: Session, *, notification_id: uuid.UUID | None, to: str, subject: str, raw: str, now: datetime) -> int:
    """Put a message in the development mailbox; its id."""
    mail = DevMail(notification_id=notification_id, to_address=to, subject=subject[:300], raw=raw, created_at=now)
    session.add(mail)
    session.flush()
    return mail.id


def mailbox(session: Session, *, limit: int = 100, to: str | None = None) -> list[DevMail]:
    """The development mailbox, newest first."""
    stmt = sa.select(DevMail).order_by(DevMail.id.desc()).limit(limit)
    if to:
        stmt = stmt.where(DevMail.to_address == to.strip().lower())
    return list(session.scalars(stmt))


def kept(session: Session, mail_id: int) -> DevMail | None:
    return session.get(DevMail, mail_id)


def listing(session: Session, *, status: str | None = None, limit: int = 100) -> list[Notification]:
    """Notifications, newest first (the CLI's `mail list --status failed`)."""
    stmt = sa.select(N).order_by(N.created_at.desc(), N.id).limit(limit)
    if status:
        stmt = stmt.where(N.status == status)
    return list(session.scalars(stmt))


def for_booking(session: Session, booking_id: uuid.UUID) -> list[Notification]:
    return list(session.scalars(sa.select(N).where(N.booking_id == booking_id).order_by(N.created_at, N.kind)))


def kept_ids(session: Session, notification_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """notification id -> its message's id in the development mailbox, for those kept there."""
    if not notification_ids:
        return {}
    stmt = sa.select(DevMail.notification_id, DevMail.id).where(DevMail.notification_id.in_(notification_ids))
    return {nid: mid for nid, mid in session.execute(stmt).tuples() if nid is not None}


def next_version(session: Session, *, booking_id: uuid.UUID, kinds: tuple[str, ...], at_least: int) -> int:
    """A version none of `kinds` has for this booking yet, and at least `at_least`."""
    stmt = sa.select(sa.func.max(N.version)).where(N.booking_id == booking_id, N.kind.in_(kinds))
    highest = session.scalar(stmt)
    return max(at_least, (highest or 0) + 1)


@dataclass(frozen=True)
class Trouble:
    """Mail that needs a person: given up on (`failed`), and what is waiting to be tried again."""

    failed: int
    retrying: int
    recent: list[Notification]


def trouble(session: Session, *, since: datetime, limit: int = 10) -> Trouble:
    """Failed notifications updated since `since` (the newest `limit` of them), and pending ones
    that have failed at least once."""
    failed = sa.and_(N.status == FAILED, N.updated_at >= since)
    count = session.scalar(sa.select(sa.func.count()).select_from(N).where(failed)) or 0
    retrying = session.scalar(
        sa.select(sa.func.count()).select_from(N).where(N.status == PENDING, N.attempts > 0, N.last_error.is_not(None))
    )
    recent = list(session.scalars(sa.select(N).where(failed).order_by(N.updated_at.desc(), N.id).limit(limit)))
    return Trouble(int(count), int(retrying or 0), recent)


def _rowcount(result: sa.Result[Any]) -> int:
    """Rows an INSERT or UPDATE without RETURNING touched (Session.execute is typed as a Result)."""
    return cast(sa.CursorResult[Any], result).rowcount
