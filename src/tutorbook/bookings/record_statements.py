"""The statements of a booking's records (bookings/records.py, which alone sends them): Core,
built once per kind and set of columns; building an UPDATE per call cost more than sending it.
Each binds `set_<column>` for what it sets and `row_id` for the row."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tutorbook.bookings.models import Booking, BookingTerms, MeetingLink, Payment, StatusHistory
from tutorbook.credits.models import CreditEntry
from tutorbook.notifications.models import Notification
from tutorbook.notifications.repository import CHANNEL
from tutorbook.versions import CacheVersion

PAYMENTS = cast(sa.Table, Payment.__table__)
BOOKINGS = cast(sa.Table, Booking.__table__)
TERMS = cast(sa.Table, BookingTerms.__table__)
HISTORY = cast(sa.Table, StatusHistory.__table__)
_HISTORY_COLUMNS = ("from_status", "to_status", "reason", "actor", "created_at", "note")
_OWN = sa.and_(
    PAYMENTS.c.booking_id == sa.bindparam("row_id", type_=PAYMENTS.c.booking_id.type),
    PAYMENTS.c.state != sa.literal_column("'refused'"),
)
_BY_ID = PAYMENTS.c.id == sa.bindparam("row_id", type_=PAYMENTS.c.id.type)


def set_binds(table: sa.Table, columns: tuple[str, ...], prefix: str = "set_") -> dict[str, sa.BindParameter[Any]]:
    """SET column = :<prefix>column for each column."""
    return {c: sa.bindparam(f"{prefix}{c}", type_=table.c[c].type) for c in columns}


@functools.lru_cache(maxsize=128)
def prebuilt(kind: str, columns: tuple[str, ...], dialect: str = "") -> sa.Executable:
    """The records' Core statements, built once per kind and set of columns (binds `set_<c>`)."""
    if kind == "move":  # a payment's compare-and-set
        state = PAYMENTS.c.state == sa.bindparam("row_state", type_=PAYMENTS.c.state.type)
        return sa.update(PAYMENTS).where(_BY_ID, state).values(set_binds(PAYMENTS, columns))
    if kind == "set":
        return sa.update(PAYMENTS).where(_BY_ID).values(set_binds(PAYMENTS, columns))
    if kind == "grow":  # set the ids, raise each total (`grow_<c>`) to at least the given one
        values: dict[str, Any] = set_binds(PAYMENTS, tuple(c for c in columns if not c.startswith("grow_")))
        for name in (c[len("grow_") :] for c in columns if c.startswith("grow_")):
            given = sa.bindparam(f"set_grow_{name}", type_=PAYMENTS.c[name].type)
            values[name] = sa.case((PAYMENTS.c[name] < given, given), else_=PAYMENTS.c[name])
        return sa.update(PAYMENTS).where(_BY_ID).values(values)
    if kind == "refunded":  # a total that never goes down
        lower = PAYMENTS.c.refunded_amount < sa.bindparam("set_refunded_amount", type_=sa.Integer)
        return sa.update(PAYMENTS).where(_BY_ID, lower).values(set_binds(PAYMENTS, columns))
    if kind == "touch":
        booking = BOOKINGS.c.id == sa.bindparam("row_id", type_=BOOKINGS.c.id.type)
        return sa.update(BOOKINGS).where(booking).values(set_binds(BOOKINGS, columns))
    if kind == "terms":  # the terms in force, replacing any older ones (a late payment's)
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(TERMS).values(set_binds(TERMS, columns))
        kept = {c: stmt.excluded[c] for c in columns if c != "booking_id"}
        return stmt.on_conflict_do_update(index_elements=["booking_id"], set_=kept)
    raise ValueError(kind)


@functools.lru_cache(maxsize=128)
def changed_together(booking_columns: tuple[str, ...], payment_columns: tuple[str, ...]) -> sa.Select[Any]:
    """PostgreSQL: a booking's status change as ONE statement (repository.apply's fast path): the
    booking's compare-and-set (binds `set_<c>`, `row_id`, `row_status`), its history row (`h_<c>`,
    written only if the booking moved) and, with `payment_columns`, its payment's compare-and-set
    (`pay_<c>`, `pay_id`, `pay_from_state`, only if the booking moved). Answers (moved, paid, the
    booking's history rows before this one): the UPDATEs and INSERT of one statement see one
    snapshot, so the count is the version less one. Built once per set of columns."""
    b = (
        sa.update(BOOKINGS)
        .where(
            BOOKINGS.c.id == sa.bindparam("row_id", type_=BOOKINGS.c.id.type),
            BOOKINGS.c.status == sa.bindparam("row_status", type_=BOOKINGS.c.status.type),
        )
        .values(set_binds(BOOKINGS, booking_columns))
        .returning(BOOKINGS.c.id)
        .cte("moved_booking")
    )
    row = [sa.bindparam(f"h_{c}", type_=HISTORY.c[c].type) for c in _HISTORY_COLUMNS]
    h = (
        sa.insert(HISTORY)
        .from_select(["session_id", *_HISTORY_COLUMNS], sa.select(b.c.id, *row))
        .returning(HISTORY.c.id)
        .cte("history_row")
    )
    counts: list[sa.ColumnElement[Any]] = [sa.select(sa.func.count()).select_from(b).scalar_subquery()]
    if payment_columns:
        p = (
            sa.update(PAYMENTS)
            .where(
                PAYMENTS.c.id == sa.bindparam("pay_id", type_=PAYMENTS.c.id.type),
                PAYMENTS.c.state == sa.bindparam("pay_from_state", type_=PAYMENTS.c.state.type),
                PAYMENTS.c.booking_id == b.c.id,
            )
            .values(set_binds(PAYMENTS, payment_columns, prefix="pay_"))
            .returning(PAYMENTS.c.id)
            .cte("moved_payment")
        )
        counts.append(sa.select(sa.func.count()).select_from(p).scalar_subquery())
    else:
        counts.append(sa.literal(0))
    before = sa.select(sa.func.count()).where(
        HISTORY.c.session_id == sa.bindparam("row_id", type_=HISTORY.c.session_id.type)
    )
    counts += [before.scalar_subquery(), sa.select(sa.func.count()).select_from(h).scalar_subquery()]
    return sa.select(*counts)


def _count(cte: sa.CTE) -> sa.ScalarSelect[Any]:
    return sa.select(sa.func.count()).select_from(cte).scalar_subquery()


def _from_booking(table: sa.Table, booking: sa.CTE, key: str, columns: tuple[str, ...], prefix: str) -> sa.CTE:
    """INSERT INTO `table` (`key`, `columns`) SELECT the new booking's id, :<prefix><c>... RETURNING."""
    binds = [sa.bindparam(f"{prefix}{c}", type_=table.c[c].type) for c in columns]
    inserted = sa.insert(table).from_select([key, *columns], sa.select(booking.c.id, *binds))
    return inserted.returning(table.c[key]).cte(f"new_{table.name}")


# What may be written along with a new booking in its one statement (PostgreSQL): kind -> the
# table, and the column that takes the new booking's id (None: the row does not name it).
ALONG: dict[str, tuple[sa.Table, str | None]] = {
    "version": (cast(sa.Table, CacheVersion.__table__), None),  # the schedule's version, moved on by one
    "entry": (cast(sa.Table, CreditEntry.__table__), "booking_id"),  # the wallet's draw
    "notice": (cast(sa.Table, Notification.__table__), "booking_id"),  # the outbox's emails (+ wake-up)
    "link": (cast(sa.Table, MeetingLink.__table__), "booking_id"),  # the meeting link's row
}
Along = tuple[tuple[str, tuple[str, ...], int], ...]  # (kind, its columns, how many rows)


def _bind_type(table: sa.Table, column: str) -> Any:
    kind = table.c[column].type
    return sa.Uuid() if isinstance(kind, sa.types.NullType) else kind  # a foreign key not resolved yet


def _along(booking: sa.CTE, j: int, kind: str, columns: tuple[str, ...], rows: int) -> sa.ScalarSelect[Any]:
    """The `along` part `j`: its rows (binds `a<j>r<i>_<c>`) INSERT ... SELECT from the booking's
    RETURNING; how many went in (the outbox's: how many wake-ups were sent)."""
    table, key = ALONG[kind]
    names = [*([key] if key else []), *columns]
    selects = [
        sa.select(*([booking.c.id] if key else []),
                  *(sa.bindparam(f"a{j}r{i}_{c}", type_=_bind_type(table, c)) for c in columns)).select_from(booking)
        for i in range(rows)
    ]  # fmt: skip
    source = sa.union_all(*selects) if rows > 1 else selects[0]
    insert = postgresql.insert(table).from_select(names, source)
    if kind == "version":
        insert = insert.on_conflict_do_update(
            index_elements=[table.c.key], set_={"version": table.c.version + 1}
        )
    elif kind == "notice":  # unless (booking, kind, version) has one already
        insert = insert.on_conflict_do_nothing()
    added = insert.returning(table.c[names[0]]).cte(f"along_{j}")
    if kind == "notice":  # the mail workers' wake-up, once per row that went in (sent at commit)
        return sa.select(sa.func.count(sa.func.pg_notify(CHANNEL, ""))).select_from(added).scalar_subquery()
    return _count(added)


@functools.lru_cache(maxsize=32)
def inserted_together(
    booking_columns: tuple[str, ...],
    history_rows: int,
    payment_columns: tuple[str, ...],
    terms_columns: tuple[str, ...],
    along: Along = (),
) -> sa.Select[Any]:
    """PostgreSQL: a new booking made and paid at once (a credit's, issue #28) as ONE statement:
    its row (binds `b_<c>`), its `history_rows` history rows (`h<i>_<c>`), its payment (`p_<c>`)
    and, with `terms_columns`, its terms (`t_<c>`), each an INSERT ... SELECT from the booking's
    INSERT ... RETURNING (nothing of it written unless the booking is); then each part of `along`
    (`ALONG`'s kinds: the schedule's version, the draw, the emails, the link; binds `a<j>r<i>_<c>`),
    the same way. Answers how many history, payment and terms rows went in, then each part's count.
    Built once per set of columns."""
    booking = sa.insert(BOOKINGS).values(set_binds(BOOKINGS, booking_columns, "b_"))
    b = booking.returning(BOOKINGS.c.id).cte("new_booking")
    rows = [
        sa.select(b.c.id, *(sa.bindparam(f"h{i}_{c}", type_=HISTORY.c[c].type) for c in _HISTORY_COLUMNS))
        for i in range(history_rows)
    ]
    h = (
        sa.insert(HISTORY)
        .from_select(["session_id", *_HISTORY_COLUMNS], sa.union_all(*rows) if len(rows) > 1 else rows[0])
        .returning(HISTORY.c.id)
        .cte("new_history")
    )
    counts = [_count(h), _count(_from_booking(PAYMENTS, b, "booking_id", payment_columns, "p_"))]
    if terms_columns:
        counts.append(_count(_from_booking(TERMS, b, "booking_id", terms_columns, "t_")))
    counts += [_along(b, j, kind, columns, n) for j, (kind, columns, n) in enumerate(along)]
    return sa.select(*counts)


def along_params(parts: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> tuple[Along, dict[str, Any]]:
    """inserted_together's `along` and binds for these parts (kind, its rows: each row's values but
    the booking's id)."""
    spec: list[tuple[str, tuple[str, ...], int]] = []
    params: dict[str, Any] = {}
    for j, (kind, rows) in enumerate(parts):
        key = ALONG[kind][1]
        columns = tuple(c for c in rows[0] if c != key)
        spec.append((kind, columns, len(rows)))
        for i, row in enumerate(rows):
            params |= {f"a{j}r{i}_{c}": row[c] for c in columns}
    return tuple(spec), params


def together_params(
    row: Mapping[str, Any], history: Sequence[Mapping[str, Any]], payment: Mapping[str, Any], terms: Mapping[str, Any]
) -> dict[str, Any]:
    """inserted_together's binds for these values."""
    params = {f"b_{c}": v for c, v in row.items()} | {f"p_{c}": v for c, v in payment.items()}
    params |= {f"t_{c}": v for c, v in terms.items()}
    for i, entry in enumerate(history):
        params |= {f"h{i}_{c}": v for c, v in entry.items() if c != "session_id"}
    return params


# The booking's columns as the attach statements return them (prefixed: they share names with the payment's).
BOOKING_RETURNED = tuple(column.label(f"b_{column.name}") for column in BOOKINGS.c)
BOOKING_ROW = sa.select(*BOOKING_RETURNED).where(BOOKINGS.c.id == sa.bindparam("row_id", type_=BOOKINGS.c.id.type))


@functools.lru_cache(maxsize=64)
def attach_statement(columns: tuple[str, ...], joined: bool) -> sa.Update:
    """attach_checkout's statement: a Core UPDATE payments ... RETURNING every column (and, when
    `joined`, the booking's, from private_sessions in its FROM), built once per set of columns (the
    ORM's UPDATE ... RETURNING the entity cost the booking route twice as much CPU)."""
    stmt = sa.update(PAYMENTS).values(set_binds(PAYMENTS, columns))
    if joined:
        return stmt.where(_OWN, BOOKINGS.c.id == PAYMENTS.c.booking_id).returning(*PAYMENTS.c, *BOOKING_RETURNED)
    return stmt.where(_OWN).returning(*PAYMENTS.c)


INSERT_PAYMENT = sa.insert(PAYMENTS)
