"""The statements of a booking's records (bookings/records.py, which alone sends them): Core,
built once per kind and set of columns; building an UPDATE per call cost more than sending it.
Each binds `set_<column>` for what it sets and `row_id` for the row."""

from __future__ import annotations

import functools
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tutorbook.bookings.models import Booking, BookingTerms, MeetingLink, Payment, StatusHistory

PAYMENTS = cast(sa.Table, Payment.__table__)
LINKS = cast(sa.Table, MeetingLink.__table__)
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
    if kind == "link":  # a booking's link row, made unless it has one
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        return insert(LINKS).values(set_binds(LINKS, columns)).on_conflict_do_nothing(index_elements=["booking_id"])
    if kind in ("link_update", "link_update_without_url"):
        link = [LINKS.c.booking_id == sa.bindparam("set_booking_id", type_=LINKS.c.booking_id.type)]
        if kind == "link_update_without_url":
            link.append(LINKS.c.url.is_(None))
        return sa.update(LINKS).where(*link).values(set_binds(LINKS, columns))
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
