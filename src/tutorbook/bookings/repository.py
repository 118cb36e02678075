"""The booking row's core: read by id or checkout, the teacher's lock and overlaps, and every
write: a lifecycle Change persisted as compare-and-set with its history row."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from tutorbook.accounts.models import Student, User
from tutorbook.bookings import lifecycle, records
from tutorbook.bookings.lifecycle import Change, Move, Reason, Status
from tutorbook.bookings.models import AdminAction, Booking, Payment, StatusHistory
from tutorbook.bookings.payment_states import PaymentKind
from tutorbook.calendars.repository import ANY_TOUCHING as ANY_BUSY
from tutorbook.config import ALLOWED_DURATIONS
from tutorbook.credits.ledger import FIRST_WITH_CREDIT
from tutorbook.db.columns import read_columns
from tutorbook.teachers import slots
from tutorbook.teachers.models import AvailabilityWindow, TeacherProfile
from tutorbook.teachers.service import TIME_OFF_TOUCHING
from tutorbook.versions import bump_rows, schedule_changed, schedule_key

HOLDING = (Status.PENDING, Status.CONFIRMED)
PS = Booking
# No booking is longer (the API accepts only ALLOWED_DURATIONS): so a booking that overlaps a
# time starts at most this long before it, which bounds the overlap check's index range scan.
LONGEST = timedelta(minutes=max(ALLOWED_DURATIONS))


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


# The same with the payment alone: its meeting link and terms are read only if used (a SELECT
# each then), for a path that does not show the booking (the webhook's fulfilment). The two
# joined loads cost the webhook about 10 % of its instructions (docs/PERFORMANCE.md §11).
_BY_CHECKOUT_PAYMENT_ONLY = _BY_CHECKOUT.options(sa.orm.lazyload(PS.meeting), sa.orm.lazyload(PS.terms_in_force))


def by_checkout_id(session: Session, checkout_id: str, *, records: bool = True) -> PS | None:
    """The booking whose recorded checkout this is; `records=False`: with its payment only."""
    return session.scalar(_BY_CHECKOUT if records else _BY_CHECKOUT_PAYMENT_ONLY, {"checkout_id": checkout_id})


def teacher_for_booking(
    session: Session, teacher_id: uuid.UUID, *, lock: bool
) -> tuple[TeacherProfile, str, str] | None:
    """(profile, full name, email) of a teacher in one query, or None. With `lock`, on PostgreSQL
    the profile row is locked FOR UPDATE, which serialises bookings of one teacher (SQLite already
    holds BEGIN IMMEDIATE)."""
    locked = lock and session.get_bind().dialect.name == "postgresql"
    row = session.execute(_TEACHER_LOCKED if locked else _TEACHER, {"teacher_id": teacher_id}).first()
    return None if row is None else (row[0], row[1], row[2])


# Built once (both): a booking reads its teacher, and on PostgreSQL locks them, with one of these.
_TEACHER = (
    sa.select(TeacherProfile, User.full_name, User.email)
    .join(User, User.id == TeacherProfile.user_id)
    .where(TeacherProfile.user_id == sa.bindparam("teacher_id", type_=TeacherProfile.user_id.type))
)
_TEACHER_LOCKED = _TEACHER.with_for_update(of=TeacherProfile)


def teacher_and_student(
    session: Session, teacher_id: uuid.UUID, student_id: uuid.UUID, *, lock: bool
) -> tuple[TeacherProfile, str, str, uuid.UUID | None, str | None] | None:
    """`teacher_for_booking`'s (profile, full name, email, locked the same way) and the student's
    parent id and name (None, None: no such student), in one query; None without the teacher."""
    locked = lock and session.get_bind().dialect.name == "postgresql"
    params = {"teacher_id": teacher_id, "student_id": student_id}
    row = session.execute(_TEACHER_STUDENT_LOCKED if locked else _TEACHER_STUDENT, params).first()
    return None if row is None else (row[0], row[1], row[2], row[3], row[4])


# The same with the student (LEFT JOINed on its id: a row whatever the student; only the
# teacher's profile is locked).
_TEACHER_STUDENT = (
    sa.select(TeacherProfile, User.full_name, User.email, Student.parent_id, Student.full_name)
    .join(User, User.id == TeacherProfile.user_id)
    .outerjoin(Student, Student.id == sa.bindparam("student_id", type_=Student.id.type))
    .where(TeacherProfile.user_id == sa.bindparam("teacher_id", type_=TeacherProfile.user_id.type))
)
_TEACHER_STUDENT_LOCKED = _TEACHER_STUDENT.with_for_update(of=TeacherProfile)


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
_OVERLAP = (
    PS.teacher_id == sa.bindparam("teacher_id", type_=PS.teacher_id.type),
    # Written into the SQL (IN (0, 1)): an IN of binds is expanded, the SQL rendered again, on
    # every execution of the statement (the slot's check is every booking's).
    PS.status.in_([sa.literal_column(str(int(status))) for status in HOLDING]),
    PS.starts_at < sa.bindparam("end", type_=PS.starts_at.type),
    PS.starts_at > sa.bindparam("earliest", type_=PS.starts_at.type),
    PS.ends_at > sa.bindparam("start", type_=PS.ends_at.type),
)
_OVERLAPPING = sa.select(PS).options(sa.orm.lazyload("*")).where(*_OVERLAP)
_OVERLAPPING_BUT = _OVERLAPPING.where(PS.id != sa.bindparam("exclude", type_=PS.id.type))


@dataclass(frozen=True)
class SlotState:
    """What stands in a slot's way, read in one statement (`slot_state`)."""

    windows: list[slots.Window]  # the teacher's weekly hours
    time_off: bool  # time off touches it
    calendar: bool  # one of their calendars is busy then
    clash: bool  # a Pending or Confirmed booking overlaps it
    lot: uuid.UUID | None = None  # with a wallet: the lot a draw takes from (None: no credit)


@dataclass(frozen=True)
class Wallet:
    """A family's credits of one teacher and length (`slot_state` asks which lot to draw from)."""

    parent_id: uuid.UUID
    minutes: int
    now: datetime


def slot_state(
    session: Session, *, teacher_id: uuid.UUID, start: datetime, end: datetime, wallet: Wallet | None = None
) -> SlotState:
    """The teacher's weekly hours and whether time off, their calendars or another booking is in
    the way of [start, end): the four reads a booking checks its slot with, as ONE statement (the
    windows LEFT JOINed to one row of three EXISTS). Under the teacher's lock (taken by an
    earlier statement: on PostgreSQL this statement's snapshot is taken after it is granted).
    With `wallet` (its lots locked by an earlier statement: `ledger.lock_wallet`), besides, the lot
    a draw takes from (`ledger.FIRST_WITH_CREDIT`: its sums seen after that lock)."""
    params: dict[str, Any] = {"teacher_id": teacher_id, "start": start, "end": end, "earliest": start - LONGEST}
    if wallet is not None:
        params |= {"parent_id": wallet.parent_id, "wallet_minutes": wallet.minutes, "wallet_now": wallet.now}
    rows = read_columns(session, _SLOT_STATE if wallet is None else _SLOT_AND_LOT, params).all()
    first = rows[0]
    windows = [slots.Window(r[0], r[1], r[2]) for r in rows if r[0] is not None]
    return SlotState(windows, bool(first[3]), bool(first[4]), bool(first[5]), first[6] if wallet else None)


_WINDOWS = cast(sa.Table, AvailabilityWindow.__table__)
_ONE = sa.select(sa.literal(1).label("one")).subquery("one")
# Built once: every booking (checkout or credit) checks its slot with it.
_SLOT_STATE = (
    sa.select(
        _WINDOWS.c.weekday,
        _WINDOWS.c.start_minute,
        _WINDOWS.c.end_minute,
        TIME_OFF_TOUCHING.exists().label("time_off"),
        ANY_BUSY.exists().label("calendar"),
        sa.select(PS.id).where(*_OVERLAP).limit(1).exists().label("clash"),
    )
    .select_from(
        _ONE.outerjoin(_WINDOWS, _WINDOWS.c.teacher_id == sa.bindparam("teacher_id", type_=_WINDOWS.c.teacher_id.type))
    )
    .order_by(_WINDOWS.c.weekday, _WINDOWS.c.start_minute)
)


_SLOT_AND_LOT = _SLOT_STATE.add_columns(FIRST_WITH_CREDIT.label("lot"))


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
    _known_version(session, booking.id, 1)  # its one history row
    if _holding_changed(change):
        schedule_changed(session, teacher_ids=[booking.teacher_id])
    return booking


def insert_paid(
    session: Session,
    booking: PS,
    changes: Sequence[Change],
    *,
    actor: str,
    kind: PaymentKind,
    along: Sequence[tuple[str, Sequence[Mapping[str, Any]]]] = (),
) -> PS:
    """A new booking made and paid in one transaction (a credit's, issue #28): its row written once
    as `changes` leave it (lifecycle.through), a history row per change, its payment and terms
    (records.insert_paid), the teacher's schedule version moved on; on PostgreSQL ONE statement
    for all of them and the rows of `along` (the kinds records.insert_paid takes: the caller's draw,
    emails, link), which only PostgreSQL takes. No unit of work, no read."""
    status, fields = lifecycle.through(changes)
    row = {c.name: getattr(booking, c.name) for c in _ROW.c} | records.booking_values(fields)
    row |= {"status": status, "reschedule_count": 0, "created_at": changes[0].at}
    history = [_history_row(booking.id, change, actor) for change in changes]
    for record in ("payment", "meeting", "terms_in_force"):  # a new booking has none yet
        set_committed_value(booking, record, None)
    together = session.get_bind().dialect.name == "postgresql"
    if together:
        parts = [*along, *([("version", bump_rows([schedule_key(booking.teacher_id)]))] if status in HOLDING else [])]
        records.insert_paid(session, booking, changes, kind=kind, together=(row, history), along=parts)
    else:
        if along:
            raise ValueError("rows along with a booking's insert need PostgreSQL")
        session.execute(_INSERT_ROW, row)
        session.execute(_ADD_HISTORY, history)
        records.insert_paid(session, booking, changes, kind=kind)
    for key, value in row.items():
        set_committed_value(booking, key, value)
    make_transient_to_detached(booking)  # loaded as written: in this session, with nothing to flush
    session.add(booking)
    _known_version(session, booking.id, len(changes))
    if status in HOLDING and not together:
        schedule_changed(session, teacher_ids=[booking.teacher_id])
    return booking


def apply(session: Session, booking: PS, change: Change, *, actor: str, note: str | None = None) -> bool:
    """UPDATE ... WHERE status = expected; False when another writer moved the booking first.
    Then its payment and terms follow the change (records.follow), in the same transaction."""
    values = {"status": change.target, **records.booking_values(change.fields)}
    if session.get_bind().dialect.name == "postgresql" and records.joinable(booking, change):
        if not _apply_together(session, booking, change, values, actor=actor, note=note):
            return False
    else:
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


def _apply_together(
    session: Session, booking: PS, change: Change, values: dict[str, Any], *, actor: str, note: str | None
) -> bool:
    """apply() on PostgreSQL: the booking's and its payment's compare-and-set and its history row
    in ONE statement (records.change_together), which counts its version too; then its terms."""
    params = _set_params(booking.id, values) | {"row_status": _expected(change)}
    params |= {f"h_{c}": v for c, v in _history_row(booking.id, change, actor, note).items() if c != "session_id"}
    version = records.change_together(session, booking, change, values=values, params=params)
    if version is None:
        session.refresh(booking)
        return False
    for key, value in values.items():
        set_committed_value(booking, key, value)
    records.follow_terms(session, booking, change)
    _known_version(session, booking.id, version)
    return True


_ROW = cast(sa.Table, PS.__table__)
_INSERT_ROW = sa.insert(_ROW)


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
        session.info.pop(_VERSIONS, None)
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
    _known_version(session, booking.id, None)
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


def _history_row(booking_id: uuid.UUID | None, change: Change, actor: str, note: str | None = None) -> dict[str, Any]:
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
    _known_version(session, booking_id, None)


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


_VERSION = sa.select(sa.func.count()).where(StatusHistory.session_id == sa.bindparam("booking_id"))


def version(session: Session, booking_id: uuid.UUID) -> int:
    """How many times the booking has changed (its history rows): a notice's version and the
    invite's SEQUENCE, so every change is one higher than the last. No query when this
    transaction's insert() or apply()'s one statement wrote (and counted) its last history row."""
    known = session.info.get(_VERSIONS)
    if known is not None and known[0] is session.get_transaction() and booking_id in known[1]:
        return int(known[1][booking_id])
    return session.scalar(_VERSION, {"booking_id": booking_id}) or 0


_VERSIONS = "tutorbook.bookings.versions"  # session.info: (transaction, {booking id: version})


def _known_version(session: Session, booking_id: uuid.UUID, value: int | None) -> None:
    """Remember the booking's version in this transaction (None: forget it: a row not counted)."""
    transaction = session.get_transaction()
    known = session.info.get(_VERSIONS)
    if known is None or known[0] is not transaction:
        known = session.info[_VERSIONS] = (transaction, dict[uuid.UUID, int]())
    versions: dict[uuid.UUID, int] = known[1]
    if value is None:
        versions.pop(booking_id, None)
    else:
        versions[booking_id] = value
