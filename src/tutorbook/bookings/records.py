"""A booking's records (issue #27): its payments, its meeting link, its terms. Every query and write
of those tables; a payment's state only through `payment_states` and a compare-and-set.

A booking status change (`lifecycle.Change`) may carry what it means for the booking's payment
(`paid_at`, `stripe_payment_intent_id`) and the terms in force (`terms_*`): `booking_values` keeps
the booking's own columns, and `follow` moves the payment and stores the terms in the same
transaction, once the booking's compare-and-set has won.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from tutorbook.bookings import payment_states as states
from tutorbook.bookings.lifecycle import Change, Reason, Status
from tutorbook.bookings.models import Booking, BookingTerms, MeetingLink, Payment
from tutorbook.bookings.payment_states import PaymentChange, PaymentKind, PaymentState

BOOKING_COLUMNS = frozenset(cast(sa.Table, Booking.__table__).c.keys())
TERMS_PREFIX = "terms_"
# What a booking's move means for its payment: (the payment's target, expired?) by reason.
_PAYS = frozenset({Reason.PAID, Reason.LATE_PAYMENT_CONFIRMED, Reason.LATE_PAYMENT_REFUNDED})
_PAYMENTS = cast(sa.Table, Payment.__table__)
_LINKS = cast(sa.Table, MeetingLink.__table__)
_BOOKINGS = cast(sa.Table, Booking.__table__)


def booking_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The booking's own columns among a Change's fields."""
    return {k: v for k, v in fields.items() if k in BOOKING_COLUMNS}


def follow(session: Session, booking: Booking, change: Change) -> None:
    """What `change` (already applied to the booking) means for its payment and terms."""
    terms = {k[len(TERMS_PREFIX) :]: v for k, v in change.fields.items() if k.startswith(TERMS_PREFIX)}
    if terms:
        store_terms(session, booking, terms)
    payment = booking.payment
    if change.reason in _PAYS:
        if payment is None:  # a booking from before payments were recorded: its payment now
            payment = open_payment(session, booking, now=change.at)
        if payment.state in states.UNPAID:
            intent = change.fields.get("stripe_payment_intent_id", payment.stripe_payment_intent_id)
            move(session, payment, states.pay(PaymentState(payment.state), now=change.at, payment_intent_id=intent))
    elif change.current == Status.PENDING and change.target == Status.CANCELLED and payment is not None:
        if payment.state == PaymentState.OPEN:
            expired = change.reason == Reason.CHECKOUT_EXPIRED
            move(session, payment, states.give_up(PaymentState.OPEN, expired=expired, now=change.at))


def follow_many(session: Session, booking_ids: Sequence[uuid.UUID], change: Change) -> None:
    """follow() for many Pending bookings cancelled at once (the expire job): their open payments
    expired or withdrawn, one compare-and-set for all."""
    if not booking_ids or not (change.current == Status.PENDING and change.target == Status.CANCELLED):
        return
    target = states.give_up(PaymentState.OPEN, expired=change.reason == Reason.CHECKOUT_EXPIRED, now=change.at)
    session.execute(
        sa.update(_PAYMENTS)
        .where(
            _PAYMENTS.c.booking_id.in_(list(booking_ids)),
            _PAYMENTS.c.state == PaymentState.OPEN.value,
        )
        .values(**target.fields)
    )


# -- payments ---------------------------------------------------------------------------


def open_payment(
    session: Session,
    booking: Booking,
    *,
    now: datetime,
    kind: PaymentKind = PaymentKind.CHECKOUT,
    **fields: Any,
) -> Payment:
    """The booking's payment, open (a checkout being made for its price); `fields`: the checkout's
    expiry, the Connect split."""
    created = states.move(None, PaymentState.OPEN, now=now)
    payment = _add(
        session,
        created,
        booking_id=booking.id,
        kind=kind,
        amount=booking.price_amount,
        currency=booking.currency,
        now=now,
        **fields,
    )
    set_committed_value(booking, "payment", payment)
    return payment


def _add(
    session: Session,
    created: PaymentChange,
    *,
    booking_id: uuid.UUID,
    kind: PaymentKind,
    amount: int,
    currency: str,
    now: datetime,
    **fields: Any,
) -> Payment:
    """Insert a new payment in the state `created` (a move from none) makes: one Core INSERT (the
    ORM's unit of work, add + flush, cost about a millisecond a row on the booking route); the
    Payment returned holds what was written."""
    totals = {"refunded_amount": 0, "transfer_amount": 0, "transfer_reversed_amount": 0, "fee_refunded_amount": 0}
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "booking_id": booking_id,
        "kind": kind.value,
        "amount": amount,
        "currency": currency,
        "created_at": now,
        **totals,
        **created.fields,
        **fields,
    }
    session.execute(sa.insert(_PAYMENTS), values)
    payment = Payment()
    for column in _PAYMENTS.c:
        set_committed_value(payment, column.name, values.get(column.name))
    return payment


def refuse_payment(
    session: Session,
    *,
    booking_id: uuid.UUID,
    amount: int,
    currency: str,
    checkout_id: str | None,
    payment_intent_id: str | None,
    now: datetime,
) -> Payment:
    """A paid checkout that cannot pay for the booking it names (another price, currency or
    checkout than the booking's): recorded refused, its refund tied to it."""
    refused = states.move(None, PaymentState.REFUSED, now=now)
    existing = None if payment_intent_id is None else refused_by_intent(session, booking_id, payment_intent_id)
    if existing is not None:
        return existing
    # A checkout id is unique among payments: kept unless another payment holds it already.
    kept = None if checkout_id is None or by_checkout(session, checkout_id) else checkout_id
    return _add(
        session,
        refused,
        booking_id=booking_id,
        kind=PaymentKind.CHECKOUT,
        amount=amount,
        currency=currency,
        now=now,
        stripe_checkout_id=kept,
        stripe_payment_intent_id=payment_intent_id,
        paid_at=now,
    )


def refused_by_intent(session: Session, booking_id: uuid.UUID, payment_intent_id: str) -> Payment | None:
    return session.scalar(
        sa.select(Payment).where(
            Payment.booking_id == booking_id,
            Payment.state == PaymentState.REFUSED.value,
            Payment.stripe_payment_intent_id == payment_intent_id,
        )
    )


_BY_CHECKOUT = sa.select(Payment).where(
    Payment.stripe_checkout_id == sa.bindparam("checkout_id", type_=Payment.stripe_checkout_id.type)
)


def by_checkout(session: Session, checkout_id: str) -> Payment | None:
    return session.scalar(_BY_CHECKOUT, {"checkout_id": checkout_id})


def move(session: Session, payment: Payment, change: PaymentChange) -> bool:
    """UPDATE payments ... WHERE id = :id AND state = :expected; False when another writer moved
    it first (the payment is read again)."""
    if change.current is None:
        raise ValueError("a move from no state creates a payment: open_payment / refuse_payment")
    stmt = (
        sa.update(_PAYMENTS)
        .where(_PAYMENTS.c.id == payment.id, _PAYMENTS.c.state == change.current.value)
        .values(**change.fields)
    )
    if cast(sa.CursorResult[Any], session.execute(stmt)).rowcount != 1:
        session.refresh(payment)
        return False
    for key, value in change.fields.items():
        set_committed_value(payment, key, value)
    return True


def set_payment(session: Session, payment: Payment, **fields: Any) -> None:
    """Non-state columns of one payment (the checkout made, the Connect split read)."""
    assert "state" not in fields, "a payment's state changes through payment_states + move()"
    session.execute(sa.update(_PAYMENTS).where(_PAYMENTS.c.id == payment.id).values(**fields))
    for key, value in fields.items():
        set_committed_value(payment, key, value)


def raise_refunded(
    session: Session, payment: Payment, *, total: int, now: datetime | None = None, booking: Booking | None = None
) -> bool:
    """refunded_amount = `total` unless it is at least that already, in one guarded UPDATE (two
    writers racing can never lower it); the payment refunded once the total reaches its amount.
    With `now`, the booking's updated_at too (its refundedAmount changed). True when the total changed."""
    values: dict[str, Any] = {"refunded_amount": total}
    if now is not None:
        values["updated_at"] = now
    stmt = (
        sa.update(_PAYMENTS)
        .where(_PAYMENTS.c.id == payment.id, _PAYMENTS.c.refunded_amount < total)
        .values(**values)
    )
    changed = bool(cast(sa.CursorResult[Any], session.execute(stmt)).rowcount)
    if changed:
        for key, value in values.items():
            set_committed_value(payment, key, value)
        if now is not None:
            session.execute(sa.update(_BOOKINGS).where(_BOOKINGS.c.id == payment.booking_id).values(updated_at=now))
            if booking is not None:
                set_committed_value(booking, "updated_at", now)
    if payment.state == PaymentState.PAID and payment.amount > 0 and payment.refunded_amount >= payment.amount:
        move(session, payment, states.refunded_in_full(PaymentState.PAID, now=now or payment.updated_at))
    return changed


def by_intent(session: Session, payment_intent_id: str) -> Payment | None:
    """The booking's own payment made through this payment intent (not a refused one)."""
    return session.scalar(
        sa.select(Payment).where(
            Payment.stripe_payment_intent_id == payment_intent_id, Payment.state != PaymentState.REFUSED.value
        )
    )


# -- meeting links ----------------------------------------------------------------------


def write_link(session: Session, booking_id: uuid.UUID, values: Mapping[str, Any], *, without_url: bool) -> int:
    """Set a booking's link columns (making its row if it has none), only while it has no link
    when `without_url`; how many rows changed (0 or 1)."""
    insert_ = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    inserted = session.execute(
        insert_(_LINKS).values(booking_id=booking_id, **values).on_conflict_do_nothing(index_elements=["booking_id"])
    )
    if cast(sa.CursorResult[Any], inserted).rowcount == 1:
        return 1
    where = [_LINKS.c.booking_id == booking_id]
    if without_url:
        where.append(_LINKS.c.url.is_(None))
    return int(cast(sa.CursorResult[Any], session.execute(sa.update(_LINKS).where(*where).values(**values))).rowcount)


def clear_link(session: Session, booking_id: uuid.UUID) -> None:
    """Forget a booking's link and its retries (a new one is made)."""
    session.execute(sa.delete(_LINKS).where(_LINKS.c.booking_id == booking_id))


# -- terms ------------------------------------------------------------------------------


def store_terms(session: Session, booking: Booking, terms: Mapping[str, int]) -> None:
    """The terms in force when the booking was paid (a late payment's replace any older ones)."""
    table = cast(sa.Table, BookingTerms.__table__)
    if booking.terms_in_force is not None:  # a late payment's terms replace any older ones
        session.execute(sa.delete(table).where(table.c.booking_id == booking.id))
        if booking.terms_in_force in session:
            session.expunge(booking.terms_in_force)
    session.execute(sa.insert(table).values(booking_id=booking.id, **terms))
    set_committed_value(booking, "terms_in_force", BookingTerms(booking_id=booking.id, **terms))
