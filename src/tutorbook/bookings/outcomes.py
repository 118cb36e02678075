"""What the booking use cases return: named types, and the follow-ups to run after the commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tutorbook.bookings.lifecycle import Reason
from tutorbook.bookings.models import Booking


@dataclass
class Followups:
    """Work to do after the commit: refunds to send to Stripe, meeting links to make, delete or
    move to a new time, destination charges whose split (transfer, application fee) to read from Stripe."""

    refunds: list[uuid.UUID] = field(default_factory=list)
    links: list[uuid.UUID] = field(default_factory=list)
    unlinks: list[tuple[str | None, str | None, str | None]] = field(default_factory=list)
    splits: list[uuid.UUID] = field(default_factory=list)
    moves: list[uuid.UUID] = field(default_factory=list)  # bookings whose meeting follows a new time

    def __bool__(self) -> bool:
        return bool(self.refunds or self.links or self.unlinks or self.splits or self.moves)

    def extend(self, other: Followups) -> None:
        self.refunds += other.refunds
        self.links += other.links
        self.unlinks += other.unlinks
        self.splits += other.splits
        self.moves += other.moves


class OutcomeKind(StrEnum):
    """What a fulfilment, a cancellation or a Stripe event did: the webhook's answer (`data`), the
    `stripe_events.outcome` column, the jobs' item outcomes and the metrics' label. Where the
    reason says it all (a late payment, a payment refused, a Pending booking cancelled by
    Stripe) the outcome's kind is that `Reason` instead (see `Outcome.kind`)."""

    # Fulfilment (settling.fulfil): a paid checkout met its booking.
    CONFIRMED = "confirmed"
    AWAITING_PAYMENT = "awaiting_payment"
    ALREADY_FULFILLED = "already_fulfilled"
    ALREADY_REFUNDED = "already_refunded"
    # A paid booking cancelled, or money given back by an operator (cancelling).
    CANCELLED = "cancelled"
    NOT_CONFIRMED = "not_confirmed"
    REFUNDED = "refunded"
    REPEATED = "repeated"
    NO_CHANGE = "no_change"
    UNKNOWN_BOOKING = "unknown_booking"
    # A lesson package's checkout (issue #28): its credits added, or it was given up.
    CREDITS_ADDED = "credits_added"
    PURCHASE_GIVEN_UP = "purchase_given_up"
    # The webhook inbox and what the other events record.
    RECEIVED = "received"  # recorded, its handling not yet written (the column's first value)
    IGNORED = "ignored"
    DUPLICATE = "duplicate"
    REFUND_RECORDED = "refund_recorded"
    TRANSFER_RECORDED = "transfer_recorded"
    FEE_RECORDED = "fee_recorded"
    SPLIT_RECORDED = "split_recorded"
    ACCOUNT_UPDATED = "account_updated"
    ACCOUNT_STALE = "account_stale"
    ACCOUNT_UNKNOWN = "account_unknown_account"


@dataclass
class Outcome:
    """What a fulfilment or cancellation did (`kind`), to which booking, and what is left to do
    after the commit."""

    kind: OutcomeKind | Reason  # a Reason: a late payment, a payment refused, a Pending booking cancelled by Stripe
    booking: Booking | None = None
    followups: Followups = field(default_factory=Followups)
    refused: Reason | None = None  # the payment could not pay for the booking and is refunded


@dataclass(frozen=True)
class Reservation:
    """A Pending booking holding its slot; `reused` when the same parent retried the same slot
    while their checkout was still open. The names come along for the answer."""

    booking: Booking
    reused: bool
    teacher_name: str
    student_name: str


@dataclass
class Moved:
    """What a reschedule did: `kind` is "rescheduled" or "unchanged" (already at that time);
    the meeting to move after the commit is in `followups.moves`."""

    kind: str
    booking: Booking
    from_start: datetime | None = None
    followups: Followups = field(default_factory=Followups)
