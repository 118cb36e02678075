"""A payment's own state machine (issue #27): one row in `payments` per attempt to pay a booking.

Pure, like `lifecycle.py`: one table of the allowed moves and functions that check a move and
return the columns it sets. The repository persists a move as a compare-and-set
(`UPDATE payments ... WHERE id = :id AND state = :expected`), so two writers never both win.

    open --paid--> paid --refunded--> refunded
    open --expired--> expired --late_paid--> paid
    open --withdrawn--> withdrawn --late_paid--> paid
    (new) --refused--> refused     a paid checkout that cannot pay for the booking it names,
                                   refunded in full at once (amount, currency, other checkout)

A partial refund is no move: it raises `refunded_amount` and the payment stays `paid`; the refund
that brings the total to the amount moves it to `refunded`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from tutorbook.errors import AppError


class PaymentState(StrEnum):
    OPEN = "open"  # created (a checkout made or being made), not paid
    PAID = "paid"  # the money came in and pays for the booking
    REFUNDED = "refunded"  # paid, then refunded in full
    EXPIRED = "expired"  # the checkout expired unpaid
    WITHDRAWN = "withdrawn"  # the checkout was withdrawn unpaid (Back, a cancel, Stripe failing at booking)
    REFUSED = "refused"  # paid at Stripe, refused by the booking (another price, currency or checkout)


class PaymentKind(StrEnum):
    CHECKOUT = "checkout"  # a Stripe Checkout Session
    CREDIT = "credit"  # one credit of the family's wallet (issue #28): its ledger draw is the booking's
    # A weekly series' later lesson (issue #29): the card saved by the series' first checkout,
    # charged off-session some days before; or, if that fails, the lesson's own checkout.
    OFF_SESSION = "off_session"


PAYMENT_KINDS = ("checkout", "credit", "off_session")


class PaymentEvent(StrEnum):
    """Why a payment moved."""

    CREATED = "created"
    PAID = "paid"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    LATE_PAID = "late_paid"
    REFUNDED = "refunded"
    REFUSED = "refused"


OP, PD, RF = PaymentState.OPEN, PaymentState.PAID, PaymentState.REFUNDED
EX, WD, RZ = PaymentState.EXPIRED, PaymentState.WITHDRAWN, PaymentState.REFUSED

# (from, to) -> the event that carries the move. Anything absent is forbidden.
PAYMENT_MOVES: dict[tuple[PaymentState | None, PaymentState], PaymentEvent] = {
    (None, OP): PaymentEvent.CREATED,
    (None, RZ): PaymentEvent.REFUSED,
    (OP, PD): PaymentEvent.PAID,
    (OP, EX): PaymentEvent.EXPIRED,
    (OP, WD): PaymentEvent.WITHDRAWN,
    # The money came in after the checkout was given up (a late payment): the booking confirms it
    # or refunds it in full; either way the payment was made.
    (EX, PD): PaymentEvent.LATE_PAID,
    (WD, PD): PaymentEvent.LATE_PAID,
    (PD, RF): PaymentEvent.REFUNDED,
}
UNPAID = frozenset({OP, EX, WD})


class IllegalPaymentMove(AppError):
    """A payment move the table does not allow."""

    status_code = 409

    def __init__(self, current: PaymentState | None, target: PaymentState):
        name = current.value if current is not None else "new"
        super().__init__(f"A {name} payment cannot become {target.value}")
        self.current, self.target = current, target


@dataclass(frozen=True)
class PaymentChange:
    """A validated payment move and the columns it sets."""

    current: PaymentState | None
    target: PaymentState
    event: PaymentEvent
    fields: dict[str, Any] = field(default_factory=dict)


def event_for(current: PaymentState | None, target: PaymentState) -> PaymentEvent:
    """The event of an allowed move; IllegalPaymentMove for any other."""
    event = PAYMENT_MOVES.get((current, target))
    if event is None:
        raise IllegalPaymentMove(current, target)
    return event


def move(current: PaymentState | None, target: PaymentState, *, now: datetime, **fields: Any) -> PaymentChange:
    """Check `current -> target` and return it with the columns to set (`state`, `updated_at`, ...)."""
    current = None if current is None else PaymentState(current)
    target = PaymentState(target)
    event = event_for(current, target)
    return PaymentChange(current, target, event, {"state": target.value, "updated_at": now, **fields})


def through(changes: Sequence[PaymentChange]) -> dict[str, Any]:
    """A new payment written once after `changes` (each checked by the table, the first from
    none, each from where the last left it): its columns. A credit is drawn and paid at once."""
    if not changes or changes[0].current is not None:
        raise ValueError("a new payment's moves start from none")
    for before, after in zip(changes, changes[1:], strict=False):
        if after.current != before.target:
            raise IllegalPaymentMove(after.current, after.target)
    fields: dict[str, Any] = {}
    for change in changes:
        fields |= change.fields
    return fields


def pay(current: PaymentState, *, now: datetime, payment_intent_id: str | None) -> PaymentChange:
    """open (or, late, expired/withdrawn) -> paid."""
    return move(current, PD, now=now, paid_at=now, stripe_payment_intent_id=payment_intent_id)


def give_up(current: PaymentState, *, expired: bool, now: datetime) -> PaymentChange:
    """open -> expired (Stripe's expiry, the expire job) or withdrawn (any other unpaid cancel)."""
    return move(current, EX if expired else WD, now=now)


def refunded_in_full(current: PaymentState, *, now: datetime) -> PaymentChange:
    """paid -> refunded, once the refunds Stripe accepted reach the amount."""
    return move(current, RF, now=now)
