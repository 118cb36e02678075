"""Every booking query, and the compare-and-set that persists a lifecycle Change."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from tutorbook.accounts.models import Student, User
from tutorbook.bookings import records
from tutorbook.bookings.lifecycle import Change, Move, Reason, Status
from tutorbook.bookings.models import AdminAction, Booking, BookingTerms, MeetingLink, Payment, Refund, StatusHistory
from tutorbook.calendars.models import BusyPeriod
from tutorbook.config import ALLOWED_DURATIONS
from tutorbook.paging import Cursor
from tutorbook.teachers.models import TeacherProfile, TimeOff
from tutorbook.versions import schedule_changed

HOLDING = (Status.PENDING, Status.CONFIRMED)
PS = Booking
# No booking is longer (the API accepts only ALLOWED_DURATIONS): so a booking that overlaps a
# time starts at most this long before it, which bounds the overlap check's index range scan.
LONGEST = timedelta(minutes=max(ALLOWED_DURATIONS))
# A booking with its teacher's and student's names.
NamedRow = sa.Row[PS, str, str]
# A paid session with its student's name and its parent's name and email.
ParentRow = sa.Row[PS, str, str, str]
# A booking of a JSON list as a plain row: every column by name, `teacher_name` and
# `student_name` (and the console's `parent_email`). Those lists only show their rows, and
# building 25 ORM objects cost as much as the rest of the request (docs/PERFORMANCE.md §6).
BookingRow = sa.RowMapping
_Select = TypeVar("_Select", bound="sa.Select[*tuple[Any, ...]]")


def get(session: Session, booking_id: uuid.UUID) -> PS | None:
    return session.get(PS, booking_id)


# The booking's own payment (not a refused one), the join its relationship makes, said once.
OWN_PAYMENT = sa.and_(Payment.booking_id == PS.id, Payment.state != sa.literal_column("'refused'"))
_BY_CHECKOUT = (
    sa.select(PS)
    .join(Payment, OWN_PAYMENT)
    .options(sa.orm.contains_eager(PS.payment))
    .where(Payment.stripe_checkout_id == sa.bindparam("checkout_id", type_=Payment.stripe_checkout_id.type))
)


def by_stripe_session(session: Session, stripe_session_id: str) -> PS | None:
    return session.scalar(_BY_CHECKOUT, {"checkout_id": stripe_session_id})


def teacher_for_booking(session: Session, teacher_id: uuid.UUID, *, lock: bool) -> tuple[TeacherProfile, str] | None:
    """(profile, full name) of a teacher in one query, or None. With `lock`, on PostgreSQL the
    profile row is locked FOR UPDATE, which serialises bookings of one teacher (SQLite already
    holds BEGIN IMMEDIATE)."""
    locked = lock and session.get_bind().dialect.name == "postgresql"
    row = session.execute(_TEACHER_LOCKED if locked else _TEACHER, {"teacher_id": teacher_id}).first()
    return None if row is None else (row[0], row[1])


# Built once (both): a booking reads its teacher, and on PostgreSQL locks them, with one of these.
_TEACHER = (
    sa.select(TeacherProfile, User.full_name)
    .join(User, User.id == TeacherProfile.user_id)
    .where(TeacherProfile.user_id == sa.bindparam("teacher_id", type_=TeacherProfile.user_id.type))
)
_TEACHER_LOCKED = _TEACHER.with_for_update(of=TeacherProfile)


def lock_teacher(session: Session, teacher_id: uuid.UUID) -> None:
    """Serialise bookings of one teacher (the lock of teacher_for_booking, without its answer)."""
    teacher_for_booking(session, teacher_id, lock=True)


def overlapping(
    session: Session, *, teacher_id: uuid.UUID, start: datetime, end: datetime, exclude: uuid.UUID | None = None
) -> list[PS]:
    """Pending/Confirmed bookings of the teacher that overlap [start, end)."""
    # `earliest` is redundant with ends_at > start, but it bounds the index range scan.
    params = {"teacher_id": teacher_id, "start": start, "end": end, "earliest": start - LONGEST, "exclude": exclude}
    return list(session.scalars(_OVERLAPPING if exclude is None else _OVERLAPPING_BUT, params))


# Built once (with and without a booking to leave out): every booking and reschedule asks.
# Its records are read (lazily) only for a clash, which is rare: no joins on every booking.
_OVERLAPPING = (
    sa.select(PS)
    .options(sa.orm.lazyload("*"))
    .where(
        PS.teacher_id == sa.bindparam("teacher_id", type_=PS.teacher_id.type),
        PS.status.in_(HOLDING),
        PS.starts_at < sa.bindparam("end", type_=PS.starts_at.type),
        PS.starts_at > sa.bindparam("earliest", type_=PS.starts_at.type),
        PS.ends_at > sa.bindparam("start", type_=PS.ends_at.type),
    )
)
_OVERLAPPING_BUT = _OVERLAPPING.where(PS.id != sa.bindparam("exclude", type_=PS.id.type))


def busy_intervals(
    session: Session, *, teacher_id: uuid.UUID, start: datetime, end: datetime, exclude: uuid.UUID | None = None
) -> list[tuple[datetime, datetime]]:
    """The teacher's held times in [start, end), but booking `exclude`'s (the one being moved),
    in start order: two columns of plain rows (issue #33: whole entities cost most of a week's
    availability at 1,600 bookings)."""
    params = {"teacher_id": teacher_id, "start": start, "end": end, "earliest": start - LONGEST, "exclude": exclude}
    return [(s, e) for s, e in session.execute(_BUSY if exclude is None else _BUSY_BUT, params)]


_BUSY = (
    sa.select(PS.starts_at, PS.ends_at).where(*_OVERLAPPING.whereclause.clauses).order_by(PS.starts_at)  # type: ignore[union-attr]
)
_BUSY_BUT = _BUSY.where(PS.id != sa.bindparam("exclude", type_=PS.id.type))


def _holding_changed(change: Change) -> bool:
    """Whether a transition frees or takes the booking's time (Pending -> Confirmed does neither)."""
    return (change.current in HOLDING) != (change.target in HOLDING)


def insert(session: Session, booking: PS, change: Change, *, actor: str) -> PS:
    """Add a new booking in the state `change` creates, with its first history row."""
    booking.status = change.target
    booking.created_at = change.at
    for key, value in change.fields.items():
        setattr(booking, key, value)
    session.add(booking)
    session.flush()
    for record in ("payment", "meeting", "terms_in_force"):  # a new booking has none yet
        set_committed_value(booking, record, None)
    _history(session, booking.id, change, actor)
    if _holding_changed(change):
        schedule_changed(session, teacher_ids=[booking.teacher_id])
    return booking


def apply(session: Session, booking: PS, change: Change, *, actor: str, note: str | None = None) -> bool:
    """UPDATE ... WHERE status = expected; False when another writer moved the booking first.
    Then its payment and terms follow the change (records.follow), in the same transaction."""
    values = {"status": change.target, **records.booking_values(change.fields)}
    if update_row(session, booking.id, values, expected=_expected(change)) != 1:
        session.refresh(booking)
        return False
    for key, value in values.items():
        set_committed_value(booking, key, value)
    records.follow(session, booking, change)
    _history(session, booking.id, change, actor, note)
    if _holding_changed(change):
        schedule_changed(session, teacher_ids=[booking.teacher_id])
    return True


_ROW = cast(sa.Table, PS.__table__)


def _set_values(columns: tuple[str, ...]) -> dict[str, sa.BindParameter[Any]]:
    """SET column = :set_column for each column (the names the prebuilt UPDATEs bind)."""
    return {c: sa.bindparam(f"set_{c}", type_=_ROW.c[c].type) for c in columns}


def _set_params(booking_id: uuid.UUID, values: dict[str, Any]) -> dict[str, Any]:
    return {f"set_{c}": v for c, v in values.items()} | {"row_id": booking_id}


@functools.lru_cache(maxsize=256)
def _update_statement(columns: tuple[str, ...], compare_status: bool) -> sa.Update:
    """UPDATE private_sessions SET `columns` WHERE id = :row_id [AND status = :row_status]. A
    Core statement built once per set of columns: the ORM's bulk UPDATE, built per call, cost
    about a millisecond."""
    where = [_ROW.c.id == sa.bindparam("row_id", type_=_ROW.c.id.type)]
    if compare_status:
        where.append(_ROW.c.status == sa.bindparam("row_status", type_=_ROW.c.status.type))
    return sa.update(_ROW).where(*where).values(_set_values(columns))


def update_row(
    session: Session, booking_id: uuid.UUID, values: dict[str, Any], *, expected: Status | None = None
) -> int:
    """Set `values` on one booking (only if its status is `expected`); how many rows changed (0
    or 1). The caller keeps any loaded object in step. A status is only ever set against the one
    expected: apply()'s compare-and-set."""
    assert "status" not in values or expected is not None, "status changes go through lifecycle + apply()"
    params = _set_params(booking_id, values)
    if expected is not None:
        params["row_status"] = expected
    stmt = _update_statement(tuple(sorted(values)), expected is not None)
    # An UPDATE without RETURNING gives a CursorResult; Session.execute is typed as the plain
    # Result (SQLAlchemy's changelog, 2.0.44: cast to read rowcount).
    return int(cast(sa.CursorResult[Any], session.execute(stmt, params)).rowcount)


def apply_many(session: Session, ids: list[uuid.UUID], change: Change, *, actor: str) -> list[uuid.UUID]:
    """apply() for many bookings at once: one UPDATE ... WHERE status = expected RETURNING id and
    one history INSERT. The ids that moved; the rest had already left `change.current`."""
    if not ids:
        return []
    values = {"status": change.target, **records.booking_values(change.fields)}
    rows = session.execute(
        sa.update(PS)
        .where(PS.id.in_(ids), PS.status == _expected(change))
        .values(**values)
        .returning(PS.id, PS.teacher_id)
        .execution_options(synchronize_session=False)
    ).all()
    moved = [row.id for row in rows]
    records.follow_many(session, moved, change)
    if moved and _holding_changed(change):
        schedule_changed(session, teacher_ids={row.teacher_id for row in rows})
    if moved:
        # One INSERT ... SELECT: the rows differ only in the booking id (an executemany sends a
        # statement per row; a 1,000-row VALUES list costs more to compile than to run).
        row = _history_row(None, change, actor)
        columns = [c for c in row if c != "session_id" and not (c == "note" and row[c] is None)]
        source = sa.select(
            PS.id, *(sa.literal(row[c], type_=StatusHistory.__table__.c[c].type) for c in columns)
        ).where(PS.id.in_(moved))
        session.execute(sa.insert(StatusHistory).from_select(["session_id", *columns], source))
    return moved


def move(session: Session, booking: PS, move: Move, *, actor: str) -> bool:
    """Reschedule as one compare-and-set: UPDATE ... WHERE id AND status AND starts_at are what
    the move was made from, with its history row (status to itself, the start before and after).
    False when another writer moved or cancelled the booking first. The caller holds the no-overlap
    guarantee: the teacher's lock and the overlap check (SQLite: BEGIN IMMEDIATE), and on
    PostgreSQL the exclusion constraint, which this UPDATE is checked against."""
    result = cast(
        sa.CursorResult[Any],
        session.execute(
            sa.update(PS)
            .where(PS.id == booking.id, PS.status == move.status, PS.starts_at == move.from_start)
            .values(**move.fields)
            .execution_options(synchronize_session=False)
        ),
    )
    if result.rowcount != 1:
        session.refresh(booking)
        return False
    for key, value in move.fields.items():
        set_committed_value(booking, key, value)
    schedule_changed(session, teacher_ids=[booking.teacher_id])
    session.add(
        StatusHistory(
            session_id=booking.id,
            from_status=move.status.value,
            to_status=move.status.value,
            reason=Reason.RESCHEDULED.value,
            actor=actor,
            created_at=move.at,
            moved_from=move.from_start,
            moved_to=move.to_start,
        )
    )
    session.flush()
    return True


def _expected(change: Change) -> Status:
    """The status a compare-and-set expects; a Change without one (a new booking) is insert()'s."""
    if change.current is None:
        raise ValueError(f"a change from no status ({change.reason.value}) creates a booking: use insert()")
    return change.current


def _history_row(
    booking_id: uuid.UUID | None, change: Change, actor: str, note: str | None = None
) -> dict[str, Any]:
    return {
        "session_id": booking_id,
        "from_status": None if change.current is None else change.current.value,
        "to_status": change.target.value,
        "reason": change.reason.value,
        "actor": actor,
        "created_at": change.at,
        "note": note,
    }


_HISTORY = cast(sa.Table, StatusHistory.__table__)
_HISTORY_COLUMNS = ("session_id", "from_status", "to_status", "reason", "actor", "created_at", "note")
_ADD_HISTORY = sa.insert(_HISTORY).values(
    {name: sa.bindparam(name, type_=_HISTORY.c[name].type) for name in _HISTORY_COLUMNS}
)


def _history(session: Session, booking_id: uuid.UUID, change: Change, actor: str, note: str | None = None) -> None:
    # One prebuilt Core INSERT: the ORM's unit of work (add + flush) cost a millisecond a row.
    session.execute(_ADD_HISTORY, _history_row(booking_id, change, actor, note))


def record_action(
    session: Session,
    booking_id: uuid.UUID,
    *,
    action: str,
    actor: str,
    note: str | None,
    detail: str | None,
    at: datetime,
) -> None:
    """An operator's action on a booking that is not a status move (or adds to one)."""
    session.add(AdminAction(session_id=booking_id, action=action, actor=actor, note=note, detail=detail, created_at=at))
    session.flush()


def actions(session: Session, booking_id: uuid.UUID) -> list[AdminAction]:
    return list(
        session.scalars(sa.select(AdminAction).where(AdminAction.session_id == booking_id).order_by(AdminAction.id))
    )


def history(session: Session, booking_id: uuid.UUID) -> list[StatusHistory]:
    return list(
        session.scalars(
            sa.select(StatusHistory).where(StatusHistory.session_id == booking_id).order_by(StatusHistory.id)
        )
    )


def attach_to_payment(session: Session, booking: PS, **fields: Any) -> bool:
    """Set non-state columns of the booking's own payment (the checkout made) and read the
    payment and the booking back into `booking` (which may be detached): an UPDATE ... RETURNING,
    then the booking's row; False when there is no such booking or payment."""
    stmt = _attach_statement(tuple(sorted(fields)))
    params = {f"set_{c}": v for c, v in fields.items()} | {"row_id": booking.id}
    row = session.execute(stmt, params).mappings().one_or_none()
    if row is None:
        return False
    payment = booking.payment if booking.payment is not None else Payment()
    for key, value in row.items():  # the mapped attributes are named as their columns
        set_committed_value(payment, key, value)
    set_committed_value(booking, "payment", payment)
    found = session.execute(_BOOKING_ROW, {"row_id": booking.id}).mappings().one_or_none()
    if found is None:
        return False
    for key, value in found.items():
        set_committed_value(booking, key, value)
    return True


_PAYMENT = cast(sa.Table, Payment.__table__)
_BOOKING_ROW = sa.select(*_ROW.c).where(_ROW.c.id == sa.bindparam("row_id", type_=_ROW.c.id.type))


@functools.lru_cache(maxsize=64)
def _attach_statement(columns: tuple[str, ...]) -> sa.Update:
    """attach_to_payment's statement: a Core UPDATE payments ... RETURNING every column, built
    once per set of columns (the ORM's UPDATE ... RETURNING the entity cost the booking route
    twice as much CPU)."""
    own = sa.and_(
        _PAYMENT.c.booking_id == sa.bindparam("row_id", type_=_PAYMENT.c.booking_id.type),
        _PAYMENT.c.state != sa.literal_column("'refused'"),
    )
    values = {c: sa.bindparam(f"set_{c}", type_=_PAYMENT.c[c].type) for c in columns}
    return sa.update(_PAYMENT).where(own).values(values).returning(*_PAYMENT.c)


def visible_to_parent(table: Any = PS) -> sa.ColumnElement[bool]:
    """My Bookings never shows a booking cancelled before it was paid (`table`: PS or an alias's `.c`)."""
    return sa.not_(sa.and_(table.status == Status.CANCELLED, table.paid_at.is_(None)))


# The names a page shows, as scalar subqueries made once (correlated to the booking): PostgreSQL
# looks them up for the page's rows only, after the ORDER BY ... LIMIT. As joins, the planner sized a
# Memoize hash table per join for every row the filter could match (~2 ms each at 1M bookings) and
# spent milliseconds more planning the four-table join.
_TEACHER_NAME = sa.select(User.full_name).where(User.id == PS.teacher_id).scalar_subquery()
_STUDENT_NAME = sa.select(Student.full_name).where(Student.id == PS.student_id).scalar_subquery()
_PARENT_EMAIL = sa.select(User.email).where(User.id == PS.parent_id).scalar_subquery()
# The users table as the parent, made once (an alias built per query cost more than the query).
PARENT = sa.orm.aliased(User, name="parent")
# Every column of a booking, for the lists that read plain rows (BookingRow).
_COLUMNS = tuple(PS.__table__.columns)


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
# The booking and its records, one-to-one outer joins on their keys: the lists' FROM.
_WITH_RECORDS = (
    sa.orm.outerjoin(PS, Payment, OWN_PAYMENT)
    .outerjoin(MeetingLink, MeetingLink.booking_id == PS.id)
    .outerjoin(BookingTerms, BookingTerms.booking_id == PS.id)
)


def _named_rows(*where: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The bookings matching `where` as BookingRows (read with `.mappings()`)."""
    names = (_TEACHER_NAME.label("teacher_name"), _STUDENT_NAME.label("student_name"))
    return sa.select(*_COLUMNS, *_RECORD_COLUMNS, *names).select_from(_WITH_RECORDS).where(*where)


def keyset(
    stmt: _Select,
    *,
    after: Cursor | tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]] | None,
    limit: int | sa.ColumnElement[int],
    newest_first: bool,
    id_descending: bool = False,
) -> _Select:
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


def my_bookings(
    session: Session, *, parent_id: uuid.UUID, page_size: int, page: int = 1, after: Cursor | None = None
) -> Sequence[BookingRow]:
    """One page of BookingRows, newest start first then by id: the page after the cursor (a
    keyset page, as cheap at the last page as at the first), else page `page` by OFFSET (the
    frontend's page numbers). `page_size + 1` rows, each also carrying `total` and `ahead` (what
    count_my_bookings returns), counted in the same statement: one round trip, not two. OFFSET
    pages skip their rows in the index alone (only ids), then read the page's rows."""
    params: dict[str, Any] = {"parent_id": parent_id, "rows": page_size}
    if after is not None:
        params["starts"], params["last_id"] = after
        return session.execute(_MY_BOOKINGS["cursor"], params).mappings().all()
    if page > 1:
        params["skip"] = (page - 1) * page_size
        return session.execute(_MY_BOOKINGS["offset"], params).mappings().all()
    return session.execute(_MY_BOOKINGS["first"], params).mappings().all()


def _my_bookings_statement(kind: str) -> sa.Select[Any]:
    """My Bookings' page statement of one kind (first page, after a cursor, by OFFSET), built once
    with bound parameters: building and hashing it per request cost 1-1.5 ms of CPU. The page size
    and the offset are rendered into the SQL (`literal_execute`), so the plan knows them."""
    parent = sa.bindparam("parent_id", type_=PS.parent_id.type)
    rows = sa.bindparam("rows", type_=sa.Integer, literal_execute=True)
    mine: tuple[sa.ColumnElement[bool], ...] = (PS.parent_id == parent, visible_to_parent())
    counted = (_COUNTED.c.parent_id == parent, visible_to_parent(_COUNTED.c))
    after = (sa.bindparam("starts", type_=PS.starts_at.type), sa.bindparam("last_id", type_=PS.id.type))
    if kind == "offset":
        skipped = sa.select(_COUNTED.c.id).where(*counted).order_by(_COUNTED.c.starts_at.desc(), _COUNTED.c.id)
        skipped = skipped.offset(sa.bindparam("skip", type_=sa.Integer, literal_execute=True))
        skipped = skipped.limit(rows + sa.literal_column("1"))
        total = sa.select(sa.func.count()).where(*counted).scalar_subquery()
        stmt = _named_rows(PS.id.in_(skipped)).add_columns(total.label("total"), sa.literal(0).label("ahead"))
        return keyset(stmt, after=None, limit=rows, newest_first=True)
    # one row of counts joined to every row of the page: one scan of the parent's index entries
    ahead = sa.func.count().filter(_through(_COUNTED.c, after)) if kind == "cursor" else sa.literal(0)
    counts = sa.select(sa.func.count().label("total"), ahead.label("ahead")).where(*counted).subquery("counts")
    stmt = _named_rows(*mine).join(counts, sa.true()).add_columns(counts.c.total, counts.c.ahead)
    return keyset(stmt, after=after if kind == "cursor" else None, limit=rows, newest_first=True)


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


_MY_BOOKINGS = {kind: _my_bookings_statement(kind) for kind in ("first", "cursor", "offset")}


def teacher_schedule(
    session: Session,
    *,
    teacher_id: uuid.UUID,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    after: Cursor | None = None,
) -> Sequence[BookingRow]:
    """A teacher's paid sessions (Confirmed, Completed, and paid-then-cancelled) overlapping
    [start, end), by start then id, after the cursor: `limit + 1` BookingRows."""
    where = [PS.teacher_id == teacher_id, PS.paid_at.is_not(None)]
    if start is not None:
        where.append(PS.ends_at > start)
    if end is not None:
        where.append(PS.starts_at < end)
    stmt = keyset(_named_rows(*where), after=after, limit=limit, newest_first=False)
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
        .where(PS.teacher_id == teacher_id, PS.paid_at.is_not(None))
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
            PS.paid_at.is_not(None),
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


_VERSION = sa.select(sa.func.count()).where(StatusHistory.session_id == sa.bindparam("booking_id"))


def version(session: Session, booking_id: uuid.UUID) -> int:
    """How many times the booking has changed (its history rows): a notice's version and the
    invite's SEQUENCE, so every change is one higher than the last."""
    return session.scalar(_VERSION, {"booking_id": booking_id}) or 0


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


# -- queries for the jobs and the operators' reports ----------------------------------


def _skip_locked(session: Session, stmt: _Select) -> _Select:
    """On PostgreSQL, lock the selected rows and skip ones another worker holds."""
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True, of=PS)
    return stmt


def _after(stmt: _Select, after: uuid.UUID | None) -> _Select:
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
    made before `unopened_before`, by id."""
    stmt = (
        sa.select(PS.id, Payment.stripe_checkout_id, PS.created_at)
        .outerjoin(Payment, OWN_PAYMENT)
        .where(
            PS.status == Status.PENDING,
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


def by_stripe_sessions(session: Session, stripe_session_ids: list[str]) -> dict[str, PS]:
    """Bookings keyed by Checkout Session id, for the ids given."""
    out: dict[str, PS] = {}
    for start in range(0, len(stripe_session_ids), 500):
        chunk = stripe_session_ids[start : start + 500]
        stmt = (
            sa.select(PS)
            .join(Payment, OWN_PAYMENT)
            .options(sa.orm.contains_eager(PS.payment))
            .where(Payment.stripe_checkout_id.in_(chunk))
        )
        rows = session.scalars(stmt)
        out.update({b.stripe_session_id: b for b in rows if b.stripe_session_id is not None})
    return out


def by_ids(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, PS]:
    """Bookings keyed by id, for the ids given."""
    out: dict[uuid.UUID, PS] = {}
    for start in range(0, len(ids), 500):
        rows = session.scalars(sa.select(PS).where(PS.id.in_(ids[start : start + 500])))
        out.update({b.id: b for b in rows})
    return out


def count_by_status(session: Session) -> dict[str, int]:
    """Bookings by status name, every status present (0 when none)."""
    counts = dict(session.execute(sa.select(PS.status, sa.func.count()).group_by(PS.status)).tuples().all())
    return {status.label: int(counts.get(status, 0)) for status in Status}


# -- the operator console's search: keyset pages, newest start first ------------------


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
    stmt = _named_rows(*conds).add_columns(_PARENT_EMAIL.label("parent_email"))
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
