"""The lists people read: My Bookings, the teacher's schedule, a parent's upcoming and past
sessions and open checkouts, the sessions inside time off, the calendar feed, reminders due."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.accounts.models import Student, User
from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.models import BookingTerms, MeetingLink, Payment
from tutorbook.bookings.payment_states import PaymentKind, PaymentState
from tutorbook.bookings.repository import HOLDING, OWN_PAYMENT, PS
from tutorbook.db.columns import read_columns
from tutorbook.paging import Cursor
from tutorbook.teachers.models import TimeOff

# A booking with its teacher's and student's names.
NamedRow = sa.Row[PS, str, str]
# A paid session with its student's name and its parent's name and email.
ParentRow = sa.Row[PS, str, str, str]
# A booking of a JSON list as a plain row: every column by name, `teacher_name` and
# `student_name` (and the console's `parent_email`). Those lists only show their rows, and
# building 25 ORM objects cost as much as the rest of the request (docs/PERFORMANCE.md §6).
BookingRow = sa.RowMapping
AnySelect = TypeVar("AnySelect", bound="sa.Select[*tuple[Any, ...]]")


def visible_to_parent(table: Any = PS) -> sa.ColumnElement[bool]:
    """My Bookings never shows a booking cancelled before it was paid (`table`: PS or an alias's `.c`)."""
    return sa.not_(sa.and_(table.status == Status.CANCELLED, table.paid_at.is_(None)))


# The names a page shows, as scalar subqueries made once (correlated to the booking): PostgreSQL
# looks them up for the page's rows only, after the ORDER BY ... LIMIT. As joins, the planner sized a
# Memoize hash table per join for every row the filter could match (~2 ms each at 1M bookings) and
# spent milliseconds more planning the four-table join.
_TEACHER_NAME = sa.select(User.full_name).where(User.id == PS.teacher_id).scalar_subquery()
_STUDENT_NAME = sa.select(Student.full_name).where(Student.id == PS.student_id).scalar_subquery()
PARENT_EMAIL = sa.select(User.email).where(User.id == PS.parent_id).scalar_subquery()
# The users table as the parent, made once (an alias built per query cost more than the query).
PARENT = sa.orm.aliased(User, name="parent")
# Every column of a booking, for the lists that read plain rows (BookingRow).
_COLUMNS = tuple(PS.__table__.columns)


# A payment of its own for the test (the lists may join the booking's payment already).
_RESERVING = sa.orm.aliased(Payment, name="reserving")


def paid_or_reserved() -> sa.ColumnElement[bool]:
    """Paid, or a weekly series' lesson holding its time until its card is charged (issue #29):
    what a teacher's schedule and time off show."""
    reserved = sa.exists().where(
        _RESERVING.booking_id == PS.id,
        _RESERVING.kind == PaymentKind.OFF_SESSION.value,
        _RESERVING.state == PaymentState.OPEN.value,
    )
    return sa.or_(PS.paid_at.is_not(None), sa.and_(PS.status == Status.PENDING, reserved))


def _with_names(stmt: sa.Select[PS]) -> sa.Select[PS, str, str]:
    return stmt.add_columns(_TEACHER_NAME, _STUDENT_NAME)


# Its records' columns a list row carries, under the names the JSON (and the console) show.
_RECORD_COLUMNS = (
    Payment.stripe_checkout_id.label("stripe_session_id"),
    Payment.stripe_payment_intent_id.label("stripe_payment_intent_id"),
    Payment.checkout_url.label("checkout_url"),
    Payment.checkout_expires_at.label("checkout_expires_at"),
    sa.func.coalesce(Payment.refunded_amount, 0).label("refunded_amount"),
    Payment.payout_destination.label("payout_destination"),
    MeetingLink.url.label("meeting_url"),
    BookingTerms.full_refund_hours.label("terms_full_refund_hours"),
    BookingTerms.late_refund_percent.label("terms_late_refund_percent"),
    BookingTerms.reschedule_deadline_hours.label("terms_reschedule_deadline_hours"),
    BookingTerms.max_reschedules.label("terms_max_reschedules"),
)
# The booking and its records, one-to-one outer joins on their keys: the lists' FROM (the
# console's search filters on the payment's Stripe ids through it).
_WITH_RECORDS = (
    sa.orm.outerjoin(PS, Payment, OWN_PAYMENT)
    .outerjoin(MeetingLink, MeetingLink.booking_id == PS.id)
    .outerjoin(BookingTerms, BookingTerms.booking_id == PS.id)
)


def named_rows(*where: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The bookings matching `where` as BookingRows (read with `.mappings()`): its columns and its
    records' (under the JSON's names), and the names."""
    names = (_TEACHER_NAME.label("teacher_name"), _STUDENT_NAME.label("student_name"))
    return sa.select(*_COLUMNS, *_RECORD_COLUMNS, *names).select_from(_WITH_RECORDS).where(*where)


def keyset(
    stmt: AnySelect,
    *,
    after: Cursor | tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]] | None,
    limit: int | sa.ColumnElement[int],
    newest_first: bool,
    id_descending: bool = False,
) -> AnySelect:
    """`stmt` ordered by start (newest or oldest first) then by id, from the row after `after`:
    `limit + 1` rows, the last only telling whether another page follows (paging.split_page).
    An index on (…, starts_at, id) in that order (or its reverse) reads the page and stops."""
    if after is not None:
        starts, last_id = after
        later = PS.starts_at < starts if newest_first else PS.starts_at > starts
        # The bound on starts_at alone is implied by the OR; said alone it bounds the index scan.
        bound = PS.starts_at <= starts if newest_first else PS.starts_at >= starts
        stmt = stmt.where(bound, sa.or_(later, PS.id < last_id if id_descending else PS.id > last_id))
    by_start = PS.starts_at.desc() if newest_first else PS.starts_at.asc()
    # a bound page size (a prebuilt statement's) plus one written as SQL, not as another parameter
    more = limit + 1 if isinstance(limit, int) else limit + sa.literal_column("1")
    return stmt.order_by(by_start, PS.id.desc() if id_descending else PS.id.asc()).limit(more)


# private_sessions under another name, made once: the counts My Bookings reads in its page's
# statement are subqueries over the same table, which must not correlate with the outer one.
_COUNTED = PS.__table__.alias("counted")
# ... and the one My Bookings picks its page's ids from.
_PAGED = PS.__table__.alias("paged")


def my_bookings(
    session: Session, *, parent_id: uuid.UUID, page_size: int, page: int = 1, after: Cursor | None = None
) -> Sequence[BookingRow]:
    """One page of BookingRows, newest start first then by id: the page after the cursor (a
    keyset page, as cheap at the last page as at the first), else page `page` by OFFSET (the
    frontend's page numbers). `page_size + 1` rows, each also carrying `total` and `ahead` (what
    count_my_bookings returns), counted in the same statement: one round trip, not two. OFFSET
    pages skip their rows in the index alone (only ids), then read the page's rows."""
    params: dict[str, Any] = {"parent_id": parent_id, "rows": page_size}
    ids_first = session.get_bind().dialect.name != "postgresql"
    kind = "first"
    if after is not None:
        kind, (params["starts"], params["last_id"]) = "cursor", after
    elif page > 1:
        kind, params["skip"] = "offset", (page - 1) * page_size
    # As Core: the rows are plain columns, which the ORM's execution only made dearer (issue #33).
    return read_columns(session, _MY_BOOKINGS[kind, ids_first], params).mappings().all()


def _my_bookings_statement(kind: str, ids_first: bool) -> sa.Select[Any]:
    """My Bookings' page statement of one kind (first page, after a cursor, by OFFSET), built once
    with bound parameters: building and hashing it per request cost 1-1.5 ms of CPU. The page size
    and the offset are rendered into the SQL (`literal_execute`), so the plan knows them.

    `ids_first` (SQLite): the first and cursor pages pick the page's ids from the parent's index
    first (the ORDER BY ... LIMIT on the booking table alone, in an IN subquery), then join the
    records and names for those rows. Said as one join with the LIMIT outside, SQLite joined every
    booking of the parent to its records and names before sorting (docs/PERFORMANCE.md §11).
    PostgreSQL reads that form's page from the index and joins only its rows already; the ids-first
    form cost it more to plan and run (1.2-1.5 ms -> 2.1-2.5 ms median at 100,000 rows), so it
    keeps the one join."""
    parent = sa.bindparam("parent_id", type_=PS.parent_id.type)
    rows = sa.bindparam("rows", type_=sa.Integer, literal_execute=True)
    counted = (_COUNTED.c.parent_id == parent, visible_to_parent(_COUNTED.c))
    after = (sa.bindparam("starts", type_=PS.starts_at.type), sa.bindparam("last_id", type_=PS.id.type))
    if kind == "offset":
        skipped = sa.select(_COUNTED.c.id).where(*counted).order_by(_COUNTED.c.starts_at.desc(), _COUNTED.c.id)
        skipped = skipped.offset(sa.bindparam("skip", type_=sa.Integer, literal_execute=True))
        skipped = skipped.limit(rows + sa.literal_column("1"))
        total = sa.select(sa.func.count()).where(*counted).scalar_subquery()
        stmt = named_rows(PS.id.in_(skipped)).add_columns(total.label("total"), sa.literal(0).label("ahead"))
        return keyset(stmt, after=None, limit=rows, newest_first=True)
    # one row of counts joined to every row of the page: one scan of the parent's index entries
    ahead = sa.func.count().filter(_through(_COUNTED.c, after)) if kind == "cursor" else sa.literal(0)
    counts = sa.select(sa.func.count().label("total"), ahead.label("ahead")).where(*counted).subquery("counts")
    if not ids_first:
        mine = (PS.parent_id == parent, visible_to_parent())
        stmt = named_rows(*mine).join(counts, sa.true()).add_columns(counts.c.total, counts.c.ahead)
        return keyset(stmt, after=after if kind == "cursor" else None, limit=rows, newest_first=True)
    page = sa.select(_PAGED.c.id).where(_PAGED.c.parent_id == parent, visible_to_parent(_PAGED.c))
    if kind == "cursor":
        starts, last_id = after
        page = page.where(
            _PAGED.c.starts_at <= starts,
            sa.or_(_PAGED.c.starts_at < starts, _PAGED.c.id > last_id),
        )
    page = page.order_by(_PAGED.c.starts_at.desc(), _PAGED.c.id).limit(rows + sa.literal_column("1"))
    stmt = named_rows(PS.id.in_(page)).join(counts, sa.true()).add_columns(counts.c.total, counts.c.ahead)
    return keyset(stmt, after=None, limit=rows, newest_first=True)


def _through(table: Any, cursor: Cursor | tuple[Any, Any]) -> sa.ColumnElement[bool]:
    """The rows up to the cursor's row, that row included, in My Bookings' order."""
    starts, last_id = cursor
    return sa.or_(table.starts_at > starts, sa.and_(table.starts_at == starts, table.id <= last_id))


def count_my_bookings(session: Session, *, parent_id: uuid.UUID, through: Cursor | None = None) -> tuple[int, int]:
    """(how many bookings My Bookings shows the parent, how many of them come up to the row
    `through` in its order, that row included: the rows before the page after it, which give that
    page its number), in one index-only scan (migration 0002). For a page with no rows to carry them."""
    ahead: sa.ColumnElement[int] = sa.literal(0)
    if through is not None:
        ahead = sa.func.count().filter(_through(PS, through))
    stmt = sa.select(sa.func.count(), ahead).select_from(PS).where(PS.parent_id == parent_id, visible_to_parent())
    total, before = session.execute(stmt).one()
    return int(total), int(before)


_MY_BOOKINGS = {
    (kind, ids_first): _my_bookings_statement(kind, ids_first)
    for kind in ("first", "cursor", "offset")
    for ids_first in (False, True)
}


def teacher_schedule(
    session: Session,
    *,
    teacher_id: uuid.UUID,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    after: Cursor | None = None,
) -> Sequence[BookingRow]:
    """A teacher's paid sessions (Confirmed, Completed, and paid-then-cancelled; and a series' lessons
    reserved until their card is charged) overlapping
    [start, end), by start then id, after the cursor: `limit + 1` BookingRows."""
    where = [PS.teacher_id == teacher_id, paid_or_reserved()]
    if start is not None:
        where.append(PS.ends_at > start)
    if end is not None:
        where.append(PS.starts_at < end)
    stmt = keyset(named_rows(*where), after=after, limit=limit, newest_first=False)
    return session.execute(stmt).mappings().all()


def _upcoming(now: datetime) -> sa.ColumnElement[bool]:
    """Holding (Pending or Confirmed) and not yet over."""
    return sa.and_(PS.status.in_(HOLDING), PS.ends_at > now)


def upcoming_for_parent(
    session: Session, *, parent_id: uuid.UUID, now: datetime, limit: int = 200
) -> Sequence[NamedRow]:
    """My Bookings' Upcoming: rows of (booking, teacher name, student name), soonest first."""
    stmt = _with_names(sa.select(PS).where(PS.parent_id == parent_id, _upcoming(now)))
    return session.execute(stmt.order_by(PS.starts_at, PS.id).limit(limit)).all()


def past_for_parent(
    session: Session,
    *,
    parent_id: uuid.UUID,
    now: datetime,
    limit: int,
    after: Cursor | None = None,
    before: Cursor | None = None,
) -> Sequence[NamedRow]:
    """My Bookings' Past (over, completed or cancelled after payment), latest first then by id:
    the `limit + 1` rows after the cursor `after`, or, with `before`, the `limit + 1` rows before
    it, nearest first (the caller turns them round)."""
    where = (PS.parent_id == parent_id, visible_to_parent(), sa.not_(_upcoming(now)))
    stmt = _with_names(sa.select(PS).where(*where))
    if before is not None:
        stmt = keyset(stmt, after=before, limit=limit, newest_first=False, id_descending=True)
    else:
        stmt = keyset(stmt, after=after, limit=limit, newest_first=True)
    return session.execute(stmt).all()


def open_checkouts(session: Session, *, parent_id: uuid.UUID, now: datetime) -> list[PS]:
    """The parent's Pending bookings whose checkout is still open (they hold a slot unpaid)."""
    stmt = (
        sa.select(PS)
        .join(Payment, OWN_PAYMENT)
        .options(sa.orm.contains_eager(PS.payment))
        .where(
            PS.parent_id == parent_id,
            PS.status == Status.PENDING.value,
            Payment.checkout_url.is_not(None),
            Payment.checkout_expires_at > now,
        )
    )
    return list(session.scalars(stmt.order_by(PS.created_at.desc(), PS.id)))


def schedule_with_parents(
    session: Session, *, teacher_id: uuid.UUID, start: datetime | None = None, end: datetime | None = None
) -> Sequence[ParentRow]:
    """A teacher's paid sessions by start, as rows of (booking, student name, parent name, parent email)."""
    parent = PARENT
    stmt = (
        sa.select(PS, Student.full_name, parent.full_name, parent.email)
        .join(Student, Student.id == PS.student_id)
        .join(parent, parent.id == PS.parent_id)
        .where(PS.teacher_id == teacher_id, paid_or_reserved())
        .order_by(PS.starts_at, PS.id)
    )
    if start is not None:
        stmt = stmt.where(PS.ends_at > start)
    if end is not None:
        stmt = stmt.where(PS.starts_at < end)
    return session.execute(stmt).all()


def paid_sessions_in_time_off(
    session: Session, *, teacher_id: uuid.UUID, time_off_ids: Sequence[uuid.UUID]
) -> Sequence[tuple[uuid.UUID, PS, str, str, str]]:
    """The teacher's paid sessions inside each of these time-off ranges, in one query: rows of
    (time-off id, booking, student name, parent name, parent email), by start."""
    if not time_off_ids:
        return []
    parent = PARENT
    stmt = (
        sa.select(TimeOff.id, PS, Student.full_name, parent.full_name, parent.email)
        .join(TimeOff, sa.and_(TimeOff.teacher_id == PS.teacher_id, PS.ends_at > TimeOff.starts_at))
        .join(Student, Student.id == PS.student_id)
        .join(parent, parent.id == PS.parent_id)
        .where(
            PS.teacher_id == teacher_id,
            paid_or_reserved(),
            PS.starts_at < TimeOff.ends_at,
            TimeOff.id.in_(list(time_off_ids)),
        )
        .order_by(PS.starts_at, PS.id)
    )
    return cast(Sequence[tuple[uuid.UUID, PS, str, str, str]], session.execute(stmt).all())


def names_for(session: Session, booking: PS) -> tuple[str, str]:
    teacher = session.get(User, booking.teacher_id)
    student = session.get(Student, booking.student_id)
    return (teacher.full_name if teacher else ""), (student.full_name if student else "")


def starting_between(session: Session, *, start: datetime, end: datetime, limit: int = 1000) -> list[PS]:
    """Confirmed bookings starting in [start, end), soonest first (the reminders job)."""
    stmt = (
        sa.select(PS)
        .where(PS.status == Status.CONFIRMED.value, PS.starts_at >= start, PS.starts_at < end)
        .order_by(PS.starts_at, PS.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def for_calendar(session: Session, *, user_id: uuid.UUID, since: datetime, limit: int = 500) -> list[PS]:
    """A user's paid bookings (as parent or teacher) ending after `since`, for the feed."""
    stmt = (
        sa.select(PS)
        .where(
            sa.or_(PS.parent_id == user_id, PS.teacher_id == user_id),
            PS.paid_at.is_not(None),
            PS.ends_at >= since,
        )
        .order_by(PS.starts_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def student_has_bookings(session: Session, *, student_id: uuid.UUID) -> bool:
    return session.scalar(sa.select(sa.exists().where(PS.student_id == student_id))) or False
