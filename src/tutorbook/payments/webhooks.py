"""Stripe webhooks: verify -> record the event id (once) -> dispatch -> answer 2xx."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import cast

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session

from tutorbook.bookings import earnings, lifecycle, lookup, records, settling
from tutorbook.bookings import repository as repo
from tutorbook.bookings.errors import AlreadyPaid
from tutorbook.bookings.lifecycle import Reason, Status
from tutorbook.bookings.outcomes import Outcome
from tutorbook.errors import BadRequest
from tutorbook.payments import gateway as gw
from tutorbook.payments.models import StripeEvent
from tutorbook.payments.schemas import OBJECT_SHAPES, CheckoutObject, Event, EventData
from tutorbook.teachers import payouts
from tutorbook.teachers.policy import Terms

log = logging.getLogger("tutorbook.webhooks")

MAX_BODY = 512 * 1024


# The event types dispatch() acts on; any other is recorded as "ignored" in one statement.
HANDLED = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
        "charge.refunded",
        "account.updated",
        "transfer.created",
        "transfer.updated",
        "transfer.reversed",
        "application_fee.created",
        "application_fee.refunded",
    }
)


# Stripe sends connected accounts' events only to a Connect endpoint, the platform's own only to
# the platform's (docs/payments.md, "Two webhook endpoints"): what each of ours must subscribe to.
CONNECT_EVENTS = frozenset({"account.updated"})
PLATFORM_EVENTS = HANDLED - CONNECT_EVENTS
WEBHOOK_PATH = "/api/StripeWebhook/webhook"
CONNECT_WEBHOOK_PATH = "/api/StripeWebhook/connect"


class MalformedEvent(BadRequest):
    message = "The Stripe event does not have the shape Tutorbook needs"


def check_shape(event: dict) -> None:
    """MalformedEvent (400) unless the event has what recording and handling it read: a signed
    event that would fail half-way is refused whole, before any transaction, and logged."""
    try:
        _check_shape(event)
    except MalformedEvent as exc:
        log.warning("malformed stripe event", extra={"problems": exc.data})
        raise


def _check_shape(event: dict) -> None:
    try:
        parsed = Event.model_validate(event)
    except ValidationError as exc:
        raise MalformedEvent(data=_problems(exc)) from exc
    if parsed.type not in HANDLED:
        return  # only its id and type are recorded
    shape = OBJECT_SHAPES.get(parsed.type, CheckoutObject)
    try:
        shape.model_validate(EventData.model_validate(parsed.data).object)
    except ValidationError as exc:
        raise MalformedEvent(data=_problems(exc, prefix="data.")) from exc


def _problems(exc: ValidationError, *, prefix: str = "") -> list[dict]:
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


def record_once(session: Session, *, event: dict, now: datetime, outcome: str = "received") -> bool:
    """Insert the event id; False when it was seen before (one indexed lookup)."""
    stmt = _RECORD[session.get_bind().dialect.name]
    values = {"id": event["id"], "type": event.get("type", "?"), "received_at": now, "outcome": outcome}
    # RETURNING, not rowcount: psycopg reports -1 for ORM inserts. No row back = seen before.
    return session.execute(stmt, values).scalar() is not None


def acts_on(event: dict) -> bool:
    """Whether dispatch() does anything for this event's type (else it is only recorded)."""
    return event.get("type") in HANDLED


def record_ignored(session: Session, *, event: dict, now: datetime) -> Outcome:
    """An event of a type the app does not act on: its id recorded once, in ONE statement (so
    it may run without a transaction around it): `ignored`, or `duplicate` when seen before."""
    seen = not record_once(session, event=event, now=now, outcome="ignored")
    return Outcome("duplicate" if seen else "ignored")


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


async def record_ignored_many(conn: AsyncConnection, events: list[dict], *, now: datetime) -> list[Outcome]:
    """`record_ignored` for many events in ONE statement (PostgreSQL, autocommit): each one's
    outcome, in order. An id sent twice in the batch is `ignored` the first time and
    `duplicate` after, as it would be one request after another."""
    ids = [event["id"] for event in events]
    types = [event.get("type", "?") for event in events]
    result = await conn.execute(_RECORD_MANY, {"ids": ids, "types": types, "received_at": now})
    new = set(result.scalars())
    outcomes = []
    for event_id in ids:
        outcomes.append(Outcome("ignored" if event_id in new else "duplicate"))
        new.discard(event_id)
    return outcomes


def handle(session: Session, *, event: dict, platform: Terms, now: datetime) -> Outcome:
    """Record and dispatch one verified event, all in the caller's transaction."""
    if not acts_on(event):
        return record_ignored(session, event=event, now=now)
    if not record_once(session, event=event, now=now):
        return Outcome("duplicate")
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


def dispatch(session: Session, *, event: dict, platform: Terms, now: datetime) -> Outcome:
    """Act on one event; `platform`: the terms a booking confirmed now keeps when its teacher set none."""
    obj = (event.get("data") or {}).get("object") or {}
    actor = f"stripe:{event['id']}"
    match event.get("type"):
        case "checkout.session.completed" | "checkout.session.async_payment_succeeded":
            checkout = gw.checkout_from_event_object(obj)
            return settling.fulfil(session, checkout=checkout, actor=actor, platform=platform, now=now)
        case "checkout.session.async_payment_failed":
            return _cancel_pending(session, obj=obj, reason=Reason.PAYMENT_FAILED, actor=actor, now=now)
        case "checkout.session.expired":
            return _cancel_pending(session, obj=obj, reason=_expiry_reason(event), actor=actor, now=now)
        case "charge.refunded":
            return _refunded(session, obj=obj)
        case "account.updated":
            as_of = datetime.fromtimestamp(int(event.get("created") or 0), UTC)
            state = gw.account_from_event_object(obj)
            return Outcome(f"account_{payouts.apply_state(session, state=state, as_of=as_of, now=now)}")
        case "transfer.created" | "transfer.updated" | "transfer.reversed":
            return Outcome(*earnings.apply_transfer(session, obj=obj, now=now))
        case "application_fee.created" | "application_fee.refunded":
            return Outcome(*earnings.apply_fee(session, obj=obj, now=now))
        case _:
            return Outcome("ignored")


def _expiry_reason(event: dict) -> Reason:
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


def _cancel_pending(session, *, obj: dict, reason: Reason, actor: str, now) -> Outcome:
    """Only a Pending booking is cancelled; a paid one is never touched by a late 'expired'."""
    checkout = gw.checkout_from_event_object(obj)
    booking = lookup.by_checkout(session, checkout)
    if booking is None:
        return Outcome("unknown_booking")
    if booking.status != Status.PENDING:
        return Outcome("no_change", booking)
    try:
        booking = settling.cancel_unpaid(session, booking_id=booking.id, reason=reason, actor=actor, now=now)
    except AlreadyPaid:
        return Outcome("no_change", booking)
    return Outcome(reason.value, booking)


def _refunded(session, *, obj: dict) -> Outcome:
    """Stripe's total refunded for the charge is the truth for the payment's refunded_amount."""
    payment_intent = obj.get("payment_intent")
    if isinstance(payment_intent, dict):
        payment_intent = payment_intent.get("id")
    payment = records.by_intent(session, payment_intent) if payment_intent else None
    booking = None if payment is None else repo.get(session, payment.booking_id)
    if payment is None or booking is None:
        return Outcome("unknown_booking")
    total = int(obj.get("amount_refunded") or 0)
    records.raise_refunded(session, payment, total=total)
    return Outcome("refund_recorded", booking)
