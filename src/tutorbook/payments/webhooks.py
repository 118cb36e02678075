"""Stripe webhooks: verify -> record the event id (once) -> dispatch -> answer 2xx."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session

from tutorbook.bookings import earnings, lifecycle, lookup, records, settling
from tutorbook.bookings import repository as repo
from tutorbook.bookings.checkout import Checkout
from tutorbook.bookings.errors import AlreadyPaid
from tutorbook.bookings.lifecycle import Reason, Status
from tutorbook.bookings.outcomes import Outcome, OutcomeKind
from tutorbook.bookings.payment_states import PaymentKind
from tutorbook.credits import purchases
from tutorbook.errors import BadRequest
from tutorbook.payments import gateway as gw
from tutorbook.payments.models import StripeEvent
from tutorbook.payments.schemas import (
    AccountObject,
    ApplicationFeeObject,
    ChargeObject,
    CheckoutObject,
    Event,
    EventData,
    Shape,
    TransferObject,
)
from tutorbook.teachers import payouts
from tutorbook.teachers.policy import Terms

log = logging.getLogger("tutorbook.webhooks")

MAX_BODY = 512 * 1024


class EventType(StrEnum):
    """The Stripe event types Tutorbook acts on (`HANDLERS`); any other is only recorded."""

    CHECKOUT_COMPLETED = "checkout.session.completed"
    CHECKOUT_ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
    CHECKOUT_ASYNC_FAILED = "checkout.session.async_payment_failed"
    CHECKOUT_EXPIRED = "checkout.session.expired"
    CHARGE_REFUNDED = "charge.refunded"
    ACCOUNT_UPDATED = "account.updated"
    TRANSFER_CREATED = "transfer.created"
    TRANSFER_UPDATED = "transfer.updated"
    TRANSFER_REVERSED = "transfer.reversed"
    FEE_CREATED = "application_fee.created"
    FEE_REFUNDED = "application_fee.refunded"


WEBHOOK_PATH = "/api/StripeWebhook/webhook"
CONNECT_WEBHOOK_PATH = "/api/StripeWebhook/connect"


class MalformedEvent(BadRequest):
    message = "The Stripe event does not have the shape Tutorbook needs"


def check_shape(event: dict[str, Any]) -> None:
    """MalformedEvent (400) unless the event has what recording and handling it read: a signed
    event that would fail half-way is refused whole, before any transaction, and logged."""
    try:
        _check_shape(event)
    except MalformedEvent as exc:
        log.warning("malformed stripe event", extra={"problems": exc.data})
        raise


def _check_shape(event: dict[str, Any]) -> None:
    try:
        parsed = Event.model_validate(event)
    except ValidationError as exc:
        raise MalformedEvent(data=_problems(exc)) from exc
    handling = _handling(parsed.type)
    if handling is None:
        return  # only its id and type are recorded
    try:
        handling.shape.model_validate(EventData.model_validate(parsed.data).object)
    except ValidationError as exc:
        raise MalformedEvent(data=_problems(exc, prefix="data.")) from exc


def _problems(exc: ValidationError, *, prefix: str = "") -> list[dict[str, Any]]:
    return [{"field": prefix + ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()[:10]]


EVENTS = cast(sa.Table, StripeEvent.__table__)


def _record_statement(dialect: str) -> sa.Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = EVENTS  # Core, not the ORM's bulk-insert machinery: one row, by id
    return (
        insert(table)
        .values(
            id=sa.bindparam("id"),
            type=sa.bindparam("type"),
            received_at=sa.bindparam("received_at", type_=table.c.received_at.type),
            outcome=sa.bindparam("outcome"),
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(table.c.id)
    )


# Built once: a webhook's statements are the same every time, only their values change.
_RECORD = {dialect: _record_statement(dialect) for dialect in ("postgresql", "sqlite")}
_SET_OUTCOME = sa.update(EVENTS).where(EVENTS.c.id == sa.bindparam("event_id")).values(outcome=sa.bindparam("outcome"))


def record_once(
    session: Session, *, event: dict[str, Any], now: datetime, outcome: OutcomeKind = OutcomeKind.RECEIVED
) -> bool:
    """Insert the event id; False when it was seen before (one indexed lookup)."""
    stmt = _RECORD[session.get_bind().dialect.name]
    values = {"id": event["id"], "type": event.get("type", "?"), "received_at": now, "outcome": outcome}
    # RETURNING, not rowcount: psycopg reports -1 for ORM inserts. No row back = seen before.
    return session.execute(stmt, values).scalar() is not None


def acts_on(event: dict[str, Any]) -> bool:
    """Whether dispatch() does anything for this event's type (else it is only recorded)."""
    return event.get("type") in HANDLED


def record_ignored(session: Session, *, event: dict[str, Any], now: datetime) -> Outcome:
    """An event of a type the app does not act on: its id recorded once, in ONE statement (so
    it may run without a transaction around it): `ignored`, or `duplicate` when seen before."""
    seen = not record_once(session, event=event, now=now, outcome=OutcomeKind.IGNORED)
    return Outcome(OutcomeKind.DUPLICATE if seen else OutcomeKind.IGNORED)


def _record_many_statement() -> sa.Insert:
    """PostgreSQL: many events of types the app does not act on, recorded by one INSERT from
    two arrays (one statement whatever their number), each id once; RETURNING the ids that
    were new."""
    rows = (
        sa.func.unnest(
            sa.bindparam("ids", type_=postgresql.ARRAY(sa.String)),
            sa.bindparam("types", type_=postgresql.ARRAY(sa.String)),
        )
        .table_valued("id", "type")
        .render_derived(name="rows", with_types=False)
    )
    received_at = sa.bindparam("received_at", type_=EVENTS.c.received_at.type)
    return (
        postgresql.insert(EVENTS)
        .from_select(
            ["id", "type", "received_at", "outcome"],
            sa.select(rows.c.id, rows.c.type, received_at, sa.literal_column("'ignored'", sa.String)),
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(EVENTS.c.id)
    )


_RECORD_MANY = _record_many_statement()


async def record_ignored_many(conn: AsyncConnection, events: list[dict[str, Any]], *, now: datetime) -> list[Outcome]:
    """`record_ignored` for many events in ONE statement (PostgreSQL, autocommit): each one's
    outcome, in order. An id sent twice in the batch is `ignored` the first time and
    `duplicate` after, as it would be one request after another."""
    ids = [event["id"] for event in events]
    types = [event.get("type", "?") for event in events]
    result = await conn.execute(_RECORD_MANY, {"ids": ids, "types": types, "received_at": now})
    new = set(result.scalars())
    outcomes = []
    for event_id in ids:
        outcomes.append(Outcome(OutcomeKind.IGNORED if event_id in new else OutcomeKind.DUPLICATE))
        new.discard(event_id)
    return outcomes


def handle(session: Session, *, event: dict[str, Any], platform: Terms, now: datetime) -> Outcome:
    """Record and dispatch one verified event, all in the caller's transaction."""
    if not acts_on(event):
        return record_ignored(session, event=event, now=now)
    if not record_once(session, event=event, now=now):
        return Outcome(OutcomeKind.DUPLICATE)
    outcome = dispatch(session, event=event, platform=platform, now=now)
    session.execute(_SET_OUTCOME, {"event_id": event["id"], "outcome": outcome.kind})
    log.info(
        "stripe event",
        extra={
            "event_id": event["id"],
            "type": event.get("type"),
            "outcome": outcome.kind,
            "booking_id": str(outcome.booking.id) if outcome.booking else None,
        },
    )
    return outcome


def dispatch(session: Session, *, event: dict[str, Any], platform: Terms, now: datetime) -> Outcome:
    """Act on one event; `platform`: the terms a booking confirmed now keeps when its teacher set none."""
    handling = _handling(event.get("type"))
    if handling is None:
        return Outcome(OutcomeKind.IGNORED)
    obj = (event.get("data") or {}).get("object") or {}
    received = Received(event=event, obj=obj, actor=f"stripe:{event['id']}", platform=platform, now=now)
    return handling.handler(session, received)


@dataclass(frozen=True)
class Received:
    """One verified event being handled: what its handler may read."""

    event: dict[str, Any]
    obj: dict[str, Any]  # the event's data.object, its shape already checked
    actor: str  # the history's actor: stripe:<event id>
    platform: Terms
    now: datetime


def _paid(session: Session, e: Received) -> Outcome:
    checkout = gw.checkout_from_event_object(e.obj)
    if _purchase(checkout):
        done = purchases.settle(
            session,
            checkout_id=checkout.id,
            metadata=checkout.metadata,
            paid=checkout.paid,
            payment_intent=checkout.payment_intent,
            amount_total=checkout.amount_total,
            currency=checkout.currency,
            actor=e.actor,
            now=e.now,
        )
        return Outcome(_PURCHASE_OUTCOMES.get(done, OutcomeKind.NO_CHANGE))
    # The webhook answers with the outcome's kind: its booking is read with its payment only.
    return settling.fulfil(session, checkout=checkout, actor=e.actor, platform=e.platform, now=e.now, records=False)


# What settling a package's checkout did, as the inbox records it.
_PURCHASE_OUTCOMES = {
    "paid": OutcomeKind.CREDITS_ADDED,
    "already_paid": OutcomeKind.ALREADY_FULFILLED,
    "awaiting_payment": OutcomeKind.AWAITING_PAYMENT,
    "unknown_purchase": OutcomeKind.UNKNOWN_BOOKING,
}


def _purchase(checkout: Checkout) -> bool:
    return (checkout.metadata or {}).get("type") == purchases.PURCHASE_TYPE


def _purchase_given_up(session: Session, obj: dict[str, Any], *, expired: bool, now: datetime) -> Outcome | None:
    """A package's checkout that failed or expired: its open purchase given up (None: not a package's)."""
    checkout = gw.checkout_from_event_object(obj)
    if not _purchase(checkout):
        return None
    found = purchases.by_reference(session, checkout_id=checkout.id, reference=checkout.metadata.get("purchase_id"))
    if found is None:
        return Outcome(OutcomeKind.UNKNOWN_BOOKING)
    moved = purchases.give_up(session, purchase_id=found.id, expired=expired, now=now)
    return Outcome(OutcomeKind.PURCHASE_GIVEN_UP if moved else OutcomeKind.NO_CHANGE)


def _payment_failed(session: Session, e: Received) -> Outcome:
    given_up = _purchase_given_up(session, e.obj, expired=False, now=e.now)
    if given_up is not None:
        return given_up
    return _cancel_pending(session, obj=e.obj, reason=Reason.PAYMENT_FAILED, actor=e.actor, now=e.now)


def _expired(session: Session, e: Received) -> Outcome:
    # Expired by Stripe's clock or the expire job; withdrawn when the app expired it for a cancel.
    expired = _expiry_reason(e.event) == Reason.CHECKOUT_EXPIRED
    given_up = _purchase_given_up(session, e.obj, expired=expired, now=e.now)
    if given_up is not None:
        return given_up
    return _cancel_pending(session, obj=e.obj, reason=_expiry_reason(e.event), actor=e.actor, now=e.now)


def _charge_refunded(session: Session, e: Received) -> Outcome:
    return _refunded(session, obj=e.obj)


def _account_updated(session: Session, e: Received) -> Outcome:
    as_of = datetime.fromtimestamp(int(e.event.get("created") or 0), UTC)
    state = gw.account_from_event_object(e.obj)
    return Outcome(OutcomeKind(f"account_{payouts.apply_state(session, state=state, as_of=as_of, now=e.now)}"))


def _transfer(session: Session, e: Received) -> Outcome:
    return Outcome(*earnings.apply_transfer(session, obj=e.obj, now=e.now))


def _fee(session: Session, e: Received) -> Outcome:
    return Outcome(*earnings.apply_fee(session, obj=e.obj, now=e.now))


@dataclass(frozen=True)
class Handling:
    """What an event type's data.object must look like, what acts on it, and which endpoint
    Stripe sends it to: connected accounts' events only to a Connect endpoint, the platform's
    own only to the platform's (docs/payments.md, "Two webhook endpoints")."""

    shape: type[Shape]
    handler: Callable[[Session, Received], Outcome]
    connect: bool = False


# The one table of the events Tutorbook acts on: type -> shape -> handler (and endpoint).
HANDLERS: dict[EventType, Handling] = {
    EventType.CHECKOUT_COMPLETED: Handling(CheckoutObject, _paid),
    EventType.CHECKOUT_ASYNC_SUCCEEDED: Handling(CheckoutObject, _paid),
    EventType.CHECKOUT_ASYNC_FAILED: Handling(CheckoutObject, _payment_failed),
    EventType.CHECKOUT_EXPIRED: Handling(CheckoutObject, _expired),
    EventType.CHARGE_REFUNDED: Handling(ChargeObject, _charge_refunded),
    EventType.ACCOUNT_UPDATED: Handling(AccountObject, _account_updated, connect=True),
    EventType.TRANSFER_CREATED: Handling(TransferObject, _transfer),
    EventType.TRANSFER_UPDATED: Handling(TransferObject, _transfer),
    EventType.TRANSFER_REVERSED: Handling(TransferObject, _transfer),
    EventType.FEE_CREATED: Handling(ApplicationFeeObject, _fee),
    EventType.FEE_REFUNDED: Handling(ApplicationFeeObject, _fee),
}
HANDLED = frozenset(HANDLERS)
# What each of the two endpoints must subscribe to (admin/stripe_check.py).
CONNECT_EVENTS = frozenset(t for t, handling in HANDLERS.items() if handling.connect)
PLATFORM_EVENTS = HANDLED - CONNECT_EVENTS


_BY_TYPE: dict[str, Handling] = {str(t): handling for t, handling in HANDLERS.items()}


def _handling(type_: object) -> Handling | None:
    """The table's row for an event's type; None for a type Tutorbook only records."""
    return _BY_TYPE.get(type_) if isinstance(type_, str) else None


def _expiry_reason(event: dict[str, Any]) -> Reason:
    """`checkout_expired`, unless the app expired the checkout itself and said why (a parent's
    cancel, which this event may overtake)."""
    said = gw.expiry_reason(event)
    if said is None:
        return Reason.CHECKOUT_EXPIRED
    try:
        given = Reason(said)
    except ValueError:
        return Reason.CHECKOUT_EXPIRED
    return given if given in lifecycle.ALLOWED[(Status.PENDING, Status.CANCELLED)] else Reason.CHECKOUT_EXPIRED


def _cancel_pending(session: Session, *, obj: dict[str, Any], reason: Reason, actor: str, now: datetime) -> Outcome:
    """Only a Pending booking is cancelled; a paid one is never touched by a late 'expired'."""
    checkout = gw.checkout_from_event_object(obj)
    booking = lookup.by_checkout(session, checkout)
    if booking is None:
        return Outcome(OutcomeKind.UNKNOWN_BOOKING)
    if booking.status != Status.PENDING:
        return Outcome(OutcomeKind.NO_CHANGE, booking)
    if booking.payment is not None and booking.payment.kind == PaymentKind.OFF_SESSION:
        # A series' lesson paid through its pay link: it keeps its time until its own deadline
        # (the series job's); the link opens a new checkout.
        return Outcome(OutcomeKind.NO_CHANGE, booking)
    try:
        booking = settling.cancel_unpaid(session, booking_id=booking.id, reason=reason, actor=actor, now=now)
    except AlreadyPaid:
        return Outcome(OutcomeKind.NO_CHANGE, booking)
    return Outcome(reason, booking)


def _refunded(session: Session, *, obj: dict[str, Any]) -> Outcome:
    """Stripe's total refunded for the charge is the truth for the payment's refunded_amount."""
    payment_intent = obj.get("payment_intent")
    if isinstance(payment_intent, dict):
        payment_intent = payment_intent.get("id")
    payment = records.by_intent(session, payment_intent) if isinstance(payment_intent, str) else None
    booking = None if payment is None else repo.get(session, payment.booking_id)
    if payment is None or booking is None:
        return Outcome(OutcomeKind.UNKNOWN_BOOKING)
    total = int(obj.get("amount_refunded") or 0)
    records.raise_refunded(session, payment, total=total)
    return Outcome(OutcomeKind.REFUND_RECORDED, booking)
