"""The credit ledger: every move of a family's credits is an appended entry; a balance is always
a sum of entries, never a counter updated in place.

Credits live in lots (`CreditLot`: a paid purchase, an operator's grant), each with its expiry.
A draw takes one credit from the lot of that teacher and length that expires first. Whoever
changes a lot's balance locks the wallet's lot rows first (`SELECT … FOR UPDATE` on PostgreSQL;
on SQLite every write transaction holds the one writer lock from its BEGIN IMMEDIATE), reads the
sums and appends: two bookings racing for the last credit are serialised, the second sees none.
`uq_credit_entries_booking_kind` besides makes a second draw (or return) for one booking fail.

For other domains (the weekly series of issue #29): `draw`, `give_back`, `available`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from tutorbook.credits.errors import NoCredit
from tutorbook.credits.models import CreditEntry, CreditLot, EntryKind

_SUM = sa.func.coalesce(sa.func.sum(CreditEntry.lessons), 0)
_ENTRIES = cast(sa.Table, CreditEntry.__table__)


@dataclass(frozen=True)
class Balance:
    """A family's usable credits of one teacher and length (lots not expired)."""

    teacher_id: uuid.UUID
    duration_minutes: int
    lessons: int
    earliest_expiry: datetime
    currency: str


# Built once (the booking route sends them; a statement built per call costs more than it sends).
_LOT_SUMS = (
    sa.select(CreditEntry.lot_id, _SUM)
    .where(CreditEntry.lot_id.in_(sa.bindparam("lot_ids", expanding=True)))
    .group_by(CreditEntry.lot_id)
)
_APPEND = sa.insert(_ENTRIES).returning(_ENTRIES.c.id)


def lot_balances(session: Session, lot_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Each lot's balance: the sum of its entries."""
    if not lot_ids:
        return {}
    rows = session.execute(_LOT_SUMS, {"lot_ids": list(lot_ids)})
    found = {lot_id: int(total) for lot_id, total in rows}
    return {lot_id: found.get(lot_id, 0) for lot_id in lot_ids}


def total(session: Session, *, parent_id: uuid.UUID) -> int:
    """Every entry of the family summed (expired lots included: the expire job zeroes them)."""
    return int(session.scalar(sa.select(_SUM).where(CreditEntry.parent_id == parent_id)) or 0)


def wallet(session: Session, *, parent_id: uuid.UUID, now: datetime) -> list[Balance]:
    """The family's usable balances, per teacher and length, with the earliest expiry among the
    lots that still hold credit."""
    rows = session.execute(
        sa.select(CreditLot.teacher_id, CreditLot.duration_minutes, CreditLot.expires_at, CreditLot.currency, _SUM)
        .join(CreditEntry, CreditEntry.lot_id == CreditLot.id)
        .where(CreditLot.parent_id == parent_id, CreditLot.expires_at > now)
        .group_by(CreditLot.id, CreditLot.teacher_id, CreditLot.duration_minutes, CreditLot.expires_at)
        .group_by(CreditLot.currency)
        .having(_SUM > 0)
    ).all()
    out: dict[tuple[uuid.UUID, int], Balance] = {}
    for teacher_id, minutes, expires_at, currency, lessons in rows:
        key = (teacher_id, minutes)
        seen = out.get(key)
        if seen is None:
            out[key] = Balance(teacher_id, minutes, int(lessons), expires_at, currency)
        else:
            out[key] = Balance(
                teacher_id, minutes, seen.lessons + int(lessons), min(seen.earliest_expiry, expires_at), currency
            )
    return sorted(out.values(), key=lambda b: (b.earliest_expiry, str(b.teacher_id), b.duration_minutes))


def available(
    session: Session, *, parent_id: uuid.UUID, teacher_id: uuid.UUID, duration_minutes: int, now: datetime
) -> int:
    """How many credits of this teacher and length the family can book with now."""
    return sum(
        b.lessons
        for b in wallet(session, parent_id=parent_id, now=now)
        if b.teacher_id == teacher_id and b.duration_minutes == duration_minutes
    )


def _lots(
    session: Session, *, parent_id: uuid.UUID, teacher_id: uuid.UUID, duration_minutes: int, now: datetime
) -> list[CreditLot]:
    """The wallet's unexpired lots of this teacher and length, locked, soonest expiry first. Their
    sums are read by a statement of its own, after the lock: under READ COMMITTED a sum in the
    locking statement itself would be computed from the snapshot taken before waiting for the lock
    (a race test caught it: two draws of the last credit both won)."""
    wallet = {"parent_id": parent_id, "teacher_id": teacher_id, "duration_minutes": duration_minutes, "now": now}
    return list(session.scalars(_WALLET_LOTS, wallet))


_WALLET_LOTS = (
    sa.select(CreditLot)
    .where(
        # Typed here: a foreign key's type may not be resolved yet when this module is imported.
        CreditLot.parent_id == sa.bindparam("parent_id", type_=sa.Uuid()),
        CreditLot.teacher_id == sa.bindparam("teacher_id", type_=sa.Uuid()),
        CreditLot.duration_minutes == sa.bindparam("duration_minutes", type_=CreditLot.duration_minutes.type),
        CreditLot.expires_at > sa.bindparam("now", type_=CreditLot.expires_at.type),
    )
    .order_by(CreditLot.expires_at, CreditLot.id)
    .with_for_update()
)


def lock_wallet(
    session: Session, *, parent_id: uuid.UUID, teacher_id: uuid.UUID, duration_minutes: int, now: datetime
) -> list[CreditLot]:
    """The wallet's unexpired lots of this teacher and length, locked, soonest expiry first: for a
    caller that then asks `FIRST_WITH_CREDIT` in a LATER statement of its own (whose snapshot,
    under READ COMMITTED, is taken after the lock: what another draw committed meanwhile is seen)."""
    return _lots(session, parent_id=parent_id, teacher_id=teacher_id, duration_minutes=duration_minutes, now=now)


# The lot `pick` would choose (the first, soonest expiry, holding credit; NULL: none), as a scalar
# for a caller's own statement, asked after `lock_wallet` (binds `parent_id`, `teacher_id`,
# `wallet_minutes`, `wallet_now`). Built once.
_HELD = (
    sa.select(_SUM).where(CreditEntry.lot_id == CreditLot.id).correlate(CreditLot).scalar_subquery()
)
FIRST_WITH_CREDIT = (
    sa.select(CreditLot.id)
    .where(
        CreditLot.parent_id == sa.bindparam("parent_id", type_=sa.Uuid()),
        CreditLot.teacher_id == sa.bindparam("teacher_id", type_=sa.Uuid()),
        CreditLot.duration_minutes == sa.bindparam("wallet_minutes", type_=CreditLot.duration_minutes.type),
        CreditLot.expires_at > sa.bindparam("wallet_now", type_=CreditLot.expires_at.type),
        _HELD > 0,
    )
    .order_by(CreditLot.expires_at, CreditLot.id)
    .limit(1)
    .scalar_subquery()
)


def lock_lot(session: Session, lot_id: uuid.UUID) -> CreditLot | None:
    return session.scalar(
        sa.select(CreditLot).where(CreditLot.id == lot_id).with_for_update().execution_options(populate_existing=True)
    )


def pick(
    session: Session, *, parent_id: uuid.UUID, teacher_id: uuid.UUID, duration_minutes: int, now: datetime
) -> CreditLot:
    """The lot the next draw takes from (the one expiring first that holds credit), its wallet
    locked until the transaction ends; NoCredit (409) when there is none."""
    lots = _lots(session, parent_id=parent_id, teacher_id=teacher_id, duration_minutes=duration_minutes, now=now)
    balances = lot_balances(session, [lot.id for lot in lots])
    for lot in lots:
        if balances[lot.id] > 0:
            return lot
    raise NoCredit()


def append(
    session: Session,
    lot: CreditLot,
    *,
    kind: EntryKind,
    lessons: int,
    actor: str,
    now: datetime,
    amount: int = 0,
    booking_id: uuid.UUID | None = None,
    reason: str | None = None,
    refund_status: str | None = None,
) -> CreditEntry:
    """Append one entry to `lot` (the caller holds the lot's lock and checked the balance): one
    Core INSERT … RETURNING (the ORM's unit of work costs about a millisecond a row on the
    booking route); the entry returned holds what was written."""
    values = _entry_values(
        lot, kind=kind, lessons=lessons, actor=actor, now=now, amount=amount, booking_id=booking_id,
        reason=reason, refund_status=refund_status,
    )  # fmt: skip
    entry_id = session.execute(_APPEND, values).scalar_one()
    return _loaded({"id": entry_id, **values})


def _entry_values(
    lot: CreditLot,
    *,
    kind: EntryKind,
    lessons: int,
    actor: str,
    now: datetime,
    amount: int = 0,
    booking_id: uuid.UUID | None = None,
    reason: str | None = None,
    refund_status: str | None = None,
) -> dict[str, Any]:
    return {
        "parent_id": lot.parent_id,
        "teacher_id": lot.teacher_id,
        "duration_minutes": lot.duration_minutes,
        "lot_id": lot.id,
        "kind": kind.value,
        "lessons": lessons,
        "amount": amount,
        "currency": lot.currency,
        "purchase_id": lot.purchase_id,
        "booking_id": booking_id,
        "actor": actor,
        "reason": reason,
        "stripe_refund_id": None,
        "refund_status": refund_status,
        "created_at": now,
    }


def _loaded(values: Mapping[str, Any]) -> CreditEntry:
    entry = CreditEntry()
    for key, value in values.items():
        set_committed_value(entry, key, value)
    return entry


def draw(
    session: Session,
    *,
    parent_id: uuid.UUID,
    teacher_id: uuid.UUID,
    duration_minutes: int,
    booking_id: uuid.UUID,
    actor: str,
    now: datetime,
    lot: CreditLot | None = None,
) -> CreditEntry:
    """Take one credit of this teacher and length for `booking_id` (a `draw` entry, -1), in the
    caller's transaction; NoCredit (409) without one. `lot`: one `pick` chose (and locked) already."""
    if lot is None:
        lot = pick(session, parent_id=parent_id, teacher_id=teacher_id, duration_minutes=duration_minutes, now=now)
    return append(session, lot, kind=EntryKind.DRAW, lessons=-1, actor=actor, now=now, booking_id=booking_id)


def draw_row(lot: CreditLot, *, booking_id: uuid.UUID, actor: str, now: datetime) -> dict[str, Any]:
    """The `draw` entry `draw` would append to `lot` (one `pick` chose and locked), as a row for
    the caller to write with its own statement (a credit booking's one statement on PostgreSQL;
    its id is the database's)."""
    return _entry_values(lot, kind=EntryKind.DRAW, lessons=-1, actor=actor, now=now, booking_id=booking_id)


def drawn_for(session: Session, booking_id: uuid.UUID) -> CreditEntry | None:
    """The draw that paid for a booking."""
    return session.scalar(
        sa.select(CreditEntry).where(CreditEntry.booking_id == booking_id, CreditEntry.kind == EntryKind.DRAW.value)
    )


def give_back(
    session: Session, *, booking_id: uuid.UUID, actor: str, now: datetime, reason: str | None = None
) -> CreditEntry | None:
    """Return the credit a booking drew (a `return` entry, +1, to the same lot), once; None when
    it drew none or was given back already."""
    drawn = drawn_for(session, booking_id)
    if drawn is None:
        return None
    lot = lock_lot(session, drawn.lot_id)
    assert lot is not None
    returned = session.scalar(
        sa.select(CreditEntry.id).where(
            CreditEntry.booking_id == booking_id, CreditEntry.kind == EntryKind.RETURN.value
        )
    )
    if returned is not None:
        return None
    return append(
        session, lot, kind=EntryKind.RETURN, lessons=1, actor=actor, now=now, booking_id=booking_id, reason=reason
    )


def add_lot(
    session: Session,
    *,
    parent_id: uuid.UUID,
    teacher_id: uuid.UUID,
    duration_minutes: int,
    lessons: int,
    unit_amount: int,
    currency: str,
    expires_at: datetime,
    kind: EntryKind,
    actor: str,
    now: datetime,
    amount: int,
    purchase_id: uuid.UUID | None = None,
    reason: str | None = None,
) -> CreditLot:
    """New credits in the wallet: a lot and its first entry (`purchase` or `adjust`). `amount`
    (the money the entry carries: a purchase's price, 0 for credits given) has no default, so
    every caller says it."""
    lot = new_lot(
        session,
        parent_id=parent_id,
        teacher_id=teacher_id,
        duration_minutes=duration_minutes,
        lessons=lessons,
        unit_amount=unit_amount,
        currency=currency,
        expires_at=expires_at,
        now=now,
        purchase_id=purchase_id,
    )
    append(session, lot, kind=kind, lessons=lessons, actor=actor, now=now, amount=amount, reason=reason)
    return lot


def new_lot(
    session: Session,
    *,
    parent_id: uuid.UUID,
    teacher_id: uuid.UUID,
    duration_minutes: int,
    lessons: int,
    unit_amount: int,
    currency: str,
    expires_at: datetime,
    now: datetime,
    purchase_id: uuid.UUID | None = None,
) -> CreditLot:
    """A lot without its first entry, which the caller appends (`add_lot`, or an operator's grant
    that answers with that entry)."""
    lot = CreditLot(
        id=uuid.uuid4(),
        parent_id=parent_id,
        teacher_id=teacher_id,
        duration_minutes=duration_minutes,
        lessons=lessons,
        unit_amount=unit_amount,
        currency=currency,
        expires_at=expires_at,
        purchase_id=purchase_id,
        created_at=now,
    )
    session.add(lot)
    session.flush([lot])
    return lot


def remove(
    session: Session,
    *,
    parent_id: uuid.UUID,
    teacher_id: uuid.UUID,
    duration_minutes: int,
    lessons: int,
    actor: str,
    reason: str,
    now: datetime,
) -> list[CreditEntry]:
    """An operator takes `lessons` credits away (`adjust` entries, soonest expiry first); 409
    when the family holds fewer."""
    lots = _lots(session, parent_id=parent_id, teacher_id=teacher_id, duration_minutes=duration_minutes, now=now)
    balances = lot_balances(session, [lot.id for lot in lots])
    if sum(balances.values()) < lessons:
        raise NoCredit(f"The family holds only {sum(balances.values())} such credits")
    entries, left = [], lessons
    for lot in lots:
        take = min(left, balances[lot.id])
        if take > 0:
            entries.append(
                append(session, lot, kind=EntryKind.ADJUST, lessons=-take, actor=actor, now=now, reason=reason)
            )
            left -= take
    return entries


def due_to_expire(session: Session, *, now: datetime, limit: int = 500) -> list[uuid.UUID]:
    """Lots past their validity that still hold credit."""
    return list(
        session.scalars(
            sa.select(CreditLot.id)
            .join(CreditEntry, CreditEntry.lot_id == CreditLot.id)
            .where(CreditLot.expires_at <= now)
            .group_by(CreditLot.id)
            .having(_SUM > 0)
            .limit(limit)
        )
    )


def expire(session: Session, *, lot_id: uuid.UUID, actor: str, now: datetime) -> CreditEntry | None:
    """What is left of an expired lot goes (an `expire` entry); None when nothing is left."""
    lot = lock_lot(session, lot_id)
    if lot is None or lot.expires_at > now:
        return None
    left = lot_balances(session, [lot.id])[lot.id]
    if left <= 0:
        return None
    return append(session, lot, kind=EntryKind.EXPIRE, lessons=-left, actor=actor, now=now)


@dataclass(frozen=True)
class Expiring:
    lot_id: uuid.UUID
    parent_id: uuid.UUID
    teacher_id: uuid.UUID
    lessons: int
    expires_at: datetime


def warnings_due(session: Session, *, now: datetime, days: int, limit: int = 500) -> list[Expiring]:
    """Lots that expire within `days` days, still hold credit and were not warned at that mark.
    The 30-day mark only for lots valid longer than 30 days (one bought for 30 would be warned
    the moment it is paid)."""
    column = CreditLot.warned_30_at if days >= 30 else CreditLot.warned_7_at
    conditions = [CreditLot.expires_at > now, CreditLot.expires_at <= now + timedelta(days=days), column.is_(None)]
    rows = session.execute(
        sa.select(
            CreditLot.id, CreditLot.parent_id, CreditLot.teacher_id, CreditLot.expires_at, CreditLot.created_at, _SUM
        )
        .join(CreditEntry, CreditEntry.lot_id == CreditLot.id)
        .where(*conditions)
        .group_by(CreditLot.id, CreditLot.parent_id, CreditLot.teacher_id, CreditLot.expires_at, CreditLot.created_at)
        .having(_SUM > 0)
        .limit(limit)
    )
    return [
        Expiring(lot_id, parent_id, teacher_id, int(n), at)
        for lot_id, parent_id, teacher_id, at, created, n in rows
        if days < 30 or at - created > timedelta(days=days)
    ]


def mark_warned(session: Session, *, lot_id: uuid.UUID, days: int, now: datetime) -> bool:
    """Record the warning at this mark, once (a compare-and-set on NULL); True for the winner.
    The 7-day warning marks the 30-day one too (it would say less, later)."""
    column = "warned_30_at" if days >= 30 else "warned_7_at"
    table = cast(sa.Table, CreditLot.__table__)
    values = (
        {column: now}
        if days >= 30
        else {"warned_7_at": now, "warned_30_at": sa.func.coalesce(table.c.warned_30_at, now)}
    )
    result = session.execute(sa.update(table).where(table.c.id == lot_id, table.c[column].is_(None)).values(**values))
    return bool(getattr(result, "rowcount", 0) == 1)


def entries(session: Session, *, parent_id: uuid.UUID, limit: int, before: int | None = None) -> list[CreditEntry]:
    """The family's entries, newest first, `limit` of them after the cursor (an entry id)."""
    query = sa.select(CreditEntry).where(CreditEntry.parent_id == parent_id)
    if before is not None:
        query = query.where(CreditEntry.id < before)
    return list(session.scalars(query.order_by(CreditEntry.id.desc()).limit(limit)))


def lot_of_purchase(session: Session, purchase_id: uuid.UUID) -> CreditLot | None:
    return session.scalar(sa.select(CreditLot).where(CreditLot.purchase_id == purchase_id))
