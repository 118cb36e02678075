"""A booking's records (issue #27): its payments and its terms (its meeting link:
`link_records.py`). Every query and write of those tables (no other module writes them:
tests/test_architecture.py); a payment's state only through `payment_states` and a
compare-and-set. The statements are Core, built once per set of columns
(`record_statements.py`): building an UPDATE per call cost more than sending it.

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
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from tutorbook.bookings import payment_states as states
from tutorbook.bookings import record_statements as sql
from tutorbook.bookings.lifecycle import Change, Reason, Status
from tutorbook.bookings.models import Booking, BookingTerms, Payment
from tutorbook.bookings.payment_states import PaymentChange, PaymentKind, PaymentState

BOOKING_COLUMNS = frozenset(sql.BOOKINGS.c.keys())
TERMS_PREFIX = "terms_"
# What a booking's move means for its payment: (the payment's target, expired?) by reason.
_PAYS = frozenset({Reason.PAID, Reason.LATE_PAYMENT_CONFIRMED, Reason.LATE_PAYMENT_REFUNDED})
_INTENT = "stripe_payment_intent_id"


def _params(values: Mapping[str, Any], prefix: str = "set_", **more: Any) -> dict[str, Any]:
    return {f"{prefix}{c}": v for c, v in values.items()} | more


def _rowcount(session: Session, stmt: sa.Executable, params: dict[str, Any]) -> int:
    # An UPDATE without RETURNING gives a CursorResult (Session.execute is typed as the plain Result).
    return int(cast(sa.CursorResult[Any], session.execute(stmt, params)).rowcount)


def booking_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The booking's own columns among a Change's fields."""
    return {k: v for k, v in fields.items() if k in BOOKING_COLUMNS}


def follow(session: Session, booking: Booking, change: Change) -> None:
    """What `change` (already applied to the booking) means for its payment and terms."""
    follow_terms(session, booking, change)
    if change.reason in _PAYS and booking.payment is None:  # from before payments were recorded
        open_payment(session, booking, now=change.at)
    planned = payment_move(booking, change)
    if planned is not None:
        move(session, *planned)


def follow_terms(session: Session, booking: Booking, change: Change) -> None:
    """The terms in force that `change` stores (a payment's), if any."""
    terms = {k[len(TERMS_PREFIX) :]: v for k, v in change.fields.items() if k.startswith(TERMS_PREFIX)}
    if terms:
        store_terms(session, booking, terms)


def joinable(booking: Booking, change: Change) -> bool:
    """Whether `change`'s payment part is at most one compare-and-set of the payment the booking
    has (else follow() makes one first: a booking paid from before payments were recorded)."""
    return not (change.reason in _PAYS and booking.payment is None)


def payment_move(booking: Booking, change: Change) -> tuple[Payment, PaymentChange] | None:
    """The compare-and-set of the booking's payment that `change` means, if any."""
    payment = booking.payment
    if payment is None:
        return None
    if change.reason in _PAYS:
        if payment.state not in states.UNPAID:
            return None
        intent = change.fields.get("stripe_payment_intent_id", payment.stripe_payment_intent_id)
        return payment, states.pay(PaymentState(payment.state), now=change.at, payment_intent_id=intent)
    if change.current == Status.PENDING and change.target == Status.CANCELLED and payment.state == PaymentState.OPEN:
        expired = change.reason == Reason.CHECKOUT_EXPIRED
        return payment, states.give_up(PaymentState.OPEN, expired=expired, now=change.at)
    return None


def follow_many(session: Session, booking_ids: Sequence[uuid.UUID], change: Change) -> None:
    """follow() for many Pending bookings cancelled at once (the expire job): their open payments
    expired or withdrawn, one compare-and-set for all."""
    if not booking_ids or not (change.current == Status.PENDING and change.target == Status.CANCELLED):
        return
    target = states.give_up(PaymentState.OPEN, expired=change.reason == Reason.CHECKOUT_EXPIRED, now=change.at)
    session.execute(
        sa.update(sql.PAYMENTS)
        .where(
            sql.PAYMENTS.c.booking_id.in_(list(booking_ids)),
            sql.PAYMENTS.c.state == PaymentState.OPEN.value,
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
        created.fields,
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
    state: Mapping[str, Any],
    *,
    booking_id: uuid.UUID,
    kind: PaymentKind,
    amount: int,
    currency: str,
    now: datetime,
    send: bool = True,
    **fields: Any,
) -> Payment:
    """Insert a new payment with the columns `state` (its moves from none) sets: one Core INSERT
    (the ORM's unit of work, add + flush, cost about a millisecond a row on the booking route),
    unless not `send`; the Payment returned holds what was (to be) written."""
    totals = {"refunded_amount": 0, "transfer_amount": 0, "transfer_reversed_amount": 0, "fee_refunded_amount": 0}
    ids = {"id": uuid.uuid4(), "booking_id": booking_id, "kind": kind.value, "amount": amount, "currency": currency}
    values: dict[str, Any] = {**ids, "created_at": now, **totals, **state, **fields}
    if send:
        session.execute(sql.INSERT_PAYMENT, values)
    payment = Payment()  # new: its columns set as loaded (what set_committed_value does, cheaper)
    sa.inspect(payment).dict.update({column.name: values.get(column.name) for column in sql.PAYMENTS.c})
    return payment


def insert_paid(
    session: Session,
    booking: Booking,
    changes: Sequence[Change],
    *,
    kind: PaymentKind,
    together: tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]] | None = None,
    along: Sequence[tuple[str, Sequence[Mapping[str, Any]]]] = (),
) -> None:
    """The payment (opened, then paid by the change that pays: payment_states' moves) and terms of
    a new booking made through `changes` (a credit's, issue #28): once its row is written, an
    INSERT each; on PostgreSQL, `together` with its row and history rows, ONE statement for all
    (record_statements.inserted_together), with the rows of `along` (its ALONG kinds)."""
    moves = [states.move(None, PaymentState.OPEN, now=changes[0].at)]
    for change in (c for c in changes if c.reason in _PAYS):
        moves.append(states.pay(moves[-1].target, now=change.at, payment_intent_id=change.fields.get(_INTENT)))
    terms = {k[len(TERMS_PREFIX) :]: v for c in changes for k, v in c.fields.items() if k.startswith(TERMS_PREFIX)}
    made = states.through(moves)
    amount, currency, at = booking.price_amount, booking.currency, changes[0].at
    payment = _add(
        session, made, booking_id=booking.id, kind=kind, amount=amount, currency=currency, now=at, send=not together
    )
    set_committed_value(booking, "payment", payment)
    if together is None:
        if terms:
            store_terms(session, booking, terms)
        return
    paid = {c.name: getattr(payment, c.name) for c in sql.PAYMENTS.c if c.name != "booking_id"}
    spec, params = sql.along_params(along)
    stmt = sql.inserted_together(tuple(together[0]), len(together[1]), tuple(paid), tuple(terms), spec)
    session.execute(stmt, sql.together_params(*together, paid, terms) | params)
    set_committed_value(booking, "terms_in_force", BookingTerms(booking_id=booking.id, **terms) if terms else None)


def attach_checkout(session: Session, booking: Booking, **fields: Any) -> bool:
    """Set non-state columns of the booking's own payment (the checkout made) and read the
    payment and the booking back into `booking` (which may be detached; a payment may have been
    seen meanwhile): on PostgreSQL ONE statement (UPDATE payments ... FROM private_sessions ...
    RETURNING both), so it may run without a transaction around it; on SQLite (which returns only
    the updated table's columns, and runs this in a transaction) the UPDATE, then the booking's
    row. False when there is no such booking or payment."""
    joined = session.get_bind().dialect.name == "postgresql"
    stmt = sql.attach_statement(tuple(sorted(fields)), joined)
    row = session.execute(stmt, _params(fields, row_id=booking.id)).mappings().one_or_none()
    if row is None:
        return False
    found = row if joined else session.execute(sql.BOOKING_ROW, {"row_id": booking.id}).mappings().one_or_none()
    if found is None:
        return False
    payment = booking.payment if booking.payment is not None else Payment()
    for column in sql.PAYMENTS.c:  # the mapped attributes are named as their columns
        set_committed_value(payment, column.name, row[column.name])
    set_committed_value(booking, "payment", payment)
    for column in sql.BOOKINGS.c:
        set_committed_value(booking, column.name, found[f"b_{column.name}"])
    return True


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
        refused.fields,
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
    stmt = sql.prebuilt("move", tuple(sorted(change.fields)))
    if _rowcount(session, stmt, _params(change.fields, row_id=payment.id, row_state=change.current.value)) != 1:
        session.refresh(payment)
        return False
    for key, value in change.fields.items():
        set_committed_value(payment, key, value)
    return True


def change_together(
    session: Session, booking: Booking, change: Change, *, values: Mapping[str, Any], params: dict[str, Any]
) -> int | None:
    """PostgreSQL: `change` as ONE statement (record_statements.changed_together): the booking's
    compare-and-set and history row (`values` and `params`, repository.apply's binds) and the
    compare-and-set of its payment that the change means. The booking's version after it, or None
    when another writer moved the booking first (nothing was written)."""
    planned = payment_move(booking, change)
    fields = {} if planned is None else planned[1].fields
    stmt = sql.changed_together(tuple(sorted(values)), tuple(sorted(fields)))
    if planned is not None:
        params = params | _params(fields, "pay_", pay_id=planned[0].id, pay_from_state=planned[1].current)
    moved, paid, history_before, _ = session.execute(stmt, params).one()
    if moved != 1:
        return None
    if planned is not None and paid != 1:  # another writer moved the payment first
        session.refresh(planned[0])
    elif planned is not None:
        for key, value in fields.items():
            set_committed_value(planned[0], key, value)
    return int(history_before) + 1


def set_payment(session: Session, payment: Payment, **fields: Any) -> None:
    """Non-state columns of one payment (the checkout made, the Connect split read)."""
    assert "state" not in fields, "a payment's state changes through payment_states + move()"
    session.execute(sql.prebuilt("set", tuple(sorted(fields))), _params(fields, row_id=payment.id))
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
    stmt = sql.prebuilt("refunded", tuple(sorted(values)))
    changed = bool(_rowcount(session, stmt, _params(values, row_id=payment.id)))
    if changed:
        for key, value in values.items():
            set_committed_value(payment, key, value)
        if now is not None:
            session.execute(
                sql.prebuilt("touch", ("updated_at",)), {"set_updated_at": now, "row_id": payment.booking_id}
            )
            if booking is not None:
                set_committed_value(booking, "updated_at", now)
    if payment.state == PaymentState.PAID and payment.amount > 0 and payment.refunded_amount >= payment.amount:
        move(session, payment, states.refunded_in_full(PaymentState.PAID, now=now or payment.updated_at))
    return changed


def grow_split(
    session: Session, payment: Payment, *, ids: Mapping[str, object], totals: Mapping[str, int], now: datetime
) -> None:
    """The Connect split Stripe reports: set the ids and raise each total to at least the given
    one, in one UPDATE (so two concurrent writers cannot lower a total), then re-read the row;
    refunded in full, the payment moves to `refunded` (raise_refunded)."""
    values: dict[str, object] = dict(ids, updated_at=now) | {f"grow_{name}": v for name, v in totals.items()}
    session.execute(sql.prebuilt("grow", tuple(sorted(values))), _params(values, row_id=payment.id))
    session.refresh(payment)
    raise_refunded(session, payment, total=payment.refunded_amount, now=now)


def fix_payout(session: Session, payment: Payment, *, fee: int, destination: str) -> None:
    """A package lesson's payout (issue #28): its fee and its teacher's account, each set once and
    never after its transfer is recorded; the row re-read."""
    session.execute(
        sa.update(Payment)
        .where(Payment.id == payment.id, Payment.stripe_transfer_id.is_(None))
        .values(
            platform_fee_amount=sa.func.coalesce(Payment.platform_fee_amount, fee),
            payout_destination=sa.func.coalesce(Payment.payout_destination, destination),
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(payment)


def record_payout(session: Session, *, booking_id: uuid.UUID, transfer_id: str, amount: int, now: datetime) -> bool:
    """A package lesson's transfer on its `credit` payment, once; False when one is recorded."""
    stmt = (
        sa.update(Payment)
        .where(Payment.booking_id == booking_id, Payment.kind == PaymentKind.CREDIT.value)
        .where(Payment.state != PaymentState.REFUSED.value, Payment.stripe_transfer_id.is_(None))
        .values(stripe_transfer_id=transfer_id, transfer_amount=amount, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(session, stmt, {}) == 1


def by_intent(session: Session, payment_intent_id: str) -> Payment | None:
    """The booking's own payment made through this payment intent (not a refused one)."""
    return session.scalar(
        sa.select(Payment).where(
            Payment.stripe_payment_intent_id == payment_intent_id, Payment.state != PaymentState.REFUSED.value
        )
    )


# -- terms ------------------------------------------------------------------------------


def store_terms(session: Session, booking: Booking, terms: Mapping[str, int]) -> None:
    """The terms in force when the booking was paid (a late payment's replace any older ones:
    one upsert, whether or not the booking's terms were loaded)."""
    older = None if "terms_in_force" in sa.inspect(booking).unloaded else booking.terms_in_force
    if older is not None and older in session:
        session.expunge(older)
    dialect = session.get_bind().dialect.name
    stmt = sql.prebuilt("terms", (*sorted(terms), "booking_id"), dialect)
    session.execute(stmt, _params(terms, set_booking_id=booking.id))
    set_committed_value(booking, "terms_in_force", BookingTerms(booking_id=booking.id, **terms))
