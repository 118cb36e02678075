"""The booking state machine: the four statuses, the allowed transitions, and when a booking may
be moved to another time (a reschedule, which is not a status change).

Pure functions over tables; each takes `now` and returns the field changes to persist.
Every other module changes a booking's status only through `Change` values made here, and its
time only through `Move` values made here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any

from tutorbook.errors import AppError
from tutorbook.identity import Role


class Status(IntEnum):
    PENDING = 0
    CONFIRMED = 1
    COMPLETED = 2
    CANCELLED = 3

    @property
    def label(self) -> str:
        return self.name.capitalize()


STATUS_NAMES = {s.value: s.label for s in Status}


class Reason(StrEnum):
    """Why a transition happened; the cancellation ones are stored in cancellation_reason."""

    BOOKED = "booked"
    PAID = "paid"
    LATE_PAYMENT_CONFIRMED = "late_payment_confirmed"
    LATE_PAYMENT_REFUNDED = "late_payment_refunded"
    SESSION_ENDED = "session_ended"
    MARKED_COMPLETED = "marked_completed"
    PAYMENT_CANCELLED = "payment_cancelled"
    CHECKOUT_EXPIRED = "checkout_expired"
    PAYMENT_FAILED = "payment_failed"
    CHECKOUT_FAILED = "checkout_failed"
    PARENT_CANCELLED = "parent_cancelled"
    TEACHER_CANCELLED = "teacher_cancelled"
    ADMIN_CANCELLED = "admin_cancelled"
    # A paid checkout that cannot pay for the booking it names: refunded in full, status unchanged.
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    OTHER_CHECKOUT = "other_checkout"
    # Moved to another time: not a transition (it is in no ALLOWED entry); the history row goes
    # from Confirmed to Confirmed and records the start before and after.
    RESCHEDULED = "rescheduled"


UNPAID_CANCEL_REASONS = frozenset(
    {Reason.PAYMENT_CANCELLED, Reason.CHECKOUT_EXPIRED, Reason.PAYMENT_FAILED, Reason.CHECKOUT_FAILED}
)
PAID_CANCEL_REASONS = frozenset({Reason.PARENT_CANCELLED, Reason.TEACHER_CANCELLED, Reason.ADMIN_CANCELLED})
CANCELLATION_REASONS = UNPAID_CANCEL_REASONS | PAID_CANCEL_REASONS
# Why a payment was refunded without touching the booking (a history entry from a status to itself).
REFUSED_PAYMENT_REASONS = frozenset({Reason.AMOUNT_MISMATCH, Reason.CURRENCY_MISMATCH, Reason.OTHER_CHECKOUT})

# Who cancels a paid booking -> the reason it is cancelled with.
CANCELLED_BY: dict[Role, Reason] = {
    Role.PARENT: Reason.PARENT_CANCELLED,
    Role.TEACHER: Reason.TEACHER_CANCELLED,
    Role.ADMIN: Reason.ADMIN_CANCELLED,
}
ADMIN_REFUND = "admin_refund"  # a refund's reason: an operator gave money back, the booking kept

# A cancellation's or a refund's reason in words, for the pages and the emails alike.
REASON_WORDS: dict[str, str] = {
    Reason.PAYMENT_CANCELLED: "the checkout was left without paying",
    Reason.CHECKOUT_EXPIRED: "the checkout expired before payment",
    Reason.PAYMENT_FAILED: "the payment failed",
    Reason.CHECKOUT_FAILED: "the payment page could not be opened",
    Reason.PARENT_CANCELLED: "cancelled by the parent",
    Reason.TEACHER_CANCELLED: "cancelled by the teacher",
    Reason.ADMIN_CANCELLED: "cancelled by the Tutorbook team",
    Reason.LATE_PAYMENT_REFUNDED: "paid after the booking was cancelled, refunded in full",
    Reason.AMOUNT_MISMATCH: "a payment of another amount than the booking's, refunded in full",
    Reason.CURRENCY_MISMATCH: "a payment in another currency than the booking's, refunded in full",
    Reason.OTHER_CHECKOUT: "a payment through another checkout than the booking's, refunded in full",
    ADMIN_REFUND: "refunded by Tutorbook, the booking kept",
}


def reason_words(reason: str | None) -> str:
    """A cancellation's or a refund's reason in words ("cancelled" for one without words)."""
    return REASON_WORDS.get(reason or "", "cancelled")


P, C, D, X = Status.PENDING, Status.CONFIRMED, Status.COMPLETED, Status.CANCELLED

# (from, to) -> the reasons that may carry that move. Anything absent is forbidden.
ALLOWED: dict[tuple[Status | None, Status], frozenset[Reason]] = {
    (None, P): frozenset({Reason.BOOKED}),
    (P, C): frozenset({Reason.PAID}),
    (P, X): UNPAID_CANCEL_REASONS | PAID_CANCEL_REASONS,  # staff may also withdraw a checkout
    (C, D): frozenset({Reason.SESSION_ENDED, Reason.MARKED_COMPLETED}),
    (C, X): PAID_CANCEL_REASONS,
    # A payment that arrives after an unpaid cancellation: confirm it, or keep it
    # cancelled and record the full refund (a 3 -> 3 history entry).
    (X, C): frozenset({Reason.LATE_PAYMENT_CONFIRMED}),
    (X, X): frozenset({Reason.LATE_PAYMENT_REFUNDED}) | REFUSED_PAYMENT_REASONS,
    # A payment at another price, in another currency or through another checkout than the
    # booking's: refunded in full, the booking left as it was (recorded as a move to itself).
    (P, P): REFUSED_PAYMENT_REASONS,
    (C, C): REFUSED_PAYMENT_REASONS,
    (D, D): REFUSED_PAYMENT_REASONS,
}


class IllegalTransition(AppError):
    """A move the state machine does not allow."""

    status_code = 409

    def __init__(self, current: Status | None, target: Status, reason: Reason):
        name = current.label if current is not None else "new"
        super().__init__(f"A {name} booking cannot become {target.label} ({reason.value})")
        self.current, self.target, self.reason = current, target, reason


@dataclass(frozen=True)
class Change:
    """A validated transition and the columns it sets."""

    current: Status | None
    target: Status
    reason: Reason
    at: datetime
    fields: dict[str, Any] = field(default_factory=dict)


def check(current: Status | None, target: Status, reason: Reason) -> None:
    """Raise IllegalTransition unless (current, target, reason) is in the table."""
    if reason not in ALLOWED.get((current, target), frozenset()):
        raise IllegalTransition(current, target, reason)


def _change(current: Status | None, target: Status, reason: Reason, now: datetime, **fields: Any) -> Change:
    current = None if current is None else Status(current)
    check(current, Status(target), Reason(reason))
    return Change(current, Status(target), Reason(reason), now, {"updated_at": now, **fields})


def book(*, now: datetime) -> Change:
    """A new booking starts Pending."""
    return _change(None, P, Reason.BOOKED, now)


def confirm_payment(
    current: Status, *, now: datetime, payment_intent_id: str | None, terms: Mapping[str, int] | None = None
) -> Change:
    """Pending -> Confirmed when Stripe says the checkout is paid; `terms`: the teacher's terms
    in force now, stored with the booking (policy.to_store)."""
    return _change(
        current, C, Reason.PAID, now, paid_at=now, stripe_payment_intent_id=payment_intent_id, **(terms or {})
    )


def confirm_late_payment(
    current: Status,
    *,
    now: datetime,
    payment_intent_id: str | None,
    was_paid: bool,
    terms: Mapping[str, int] | None = None,
) -> Change:
    """Cancelled (never paid) -> Confirmed when a late payment finds the slot still free."""
    if was_paid:
        raise IllegalTransition(Status(current), C, Reason.LATE_PAYMENT_CONFIRMED)
    return _change(
        current,
        C,
        Reason.LATE_PAYMENT_CONFIRMED,
        now,
        paid_at=now,
        stripe_payment_intent_id=payment_intent_id,
        cancelled_at=None,
        cancellation_reason=None,
        **(terms or {}),
    )


def refund_late_payment(current: Status, *, now: datetime, payment_intent_id: str | None) -> Change:
    """A late payment that cannot be honoured: stays Cancelled, refunded in full."""
    return _change(current, X, Reason.LATE_PAYMENT_REFUNDED, now, stripe_payment_intent_id=payment_intent_id)


def refuse_payment(current: Status, *, reason: Reason, now: datetime) -> Change:
    """A payment that cannot pay for this booking: the status stays, the history says why."""
    reason = Reason(reason)
    if reason not in REFUSED_PAYMENT_REASONS:
        raise IllegalTransition(Status(current), Status(current), reason)
    return _change(current, current, reason, now)


def cancel(current: Status, *, reason: Reason, now: datetime) -> Change:
    """Pending or Confirmed -> Cancelled with one of the listed reasons."""
    reason = Reason(reason)
    if reason not in CANCELLATION_REASONS:
        raise IllegalTransition(Status(current), X, reason)
    return _change(current, X, reason, now, cancelled_at=now, cancellation_reason=reason.value)


class TooEarlyToComplete(AppError):
    status_code = 400
    message = "A session can be marked completed only once it has started"


def complete(current: Status, *, now: datetime, starts_at: datetime, ends_at: datetime, by_job: bool) -> Change:
    """Confirmed -> Completed: by the job after the end, or by the teacher once it has started."""
    check(Status(current), D, Reason.SESSION_ENDED if by_job else Reason.MARKED_COMPLETED)
    if (by_job and now < ends_at) or (not by_job and now < starts_at):
        raise TooEarlyToComplete()
    reason = Reason.SESSION_ENDED if by_job else Reason.MARKED_COMPLETED
    return _change(current, D, reason, now)


def through(changes: Sequence[Change]) -> tuple[Status, dict[str, Any]]:
    """A new booking written once after `changes` (each checked by the table, the first from no
    status, each from where the last left it): its status and columns. A credit booking is made
    and paid in one transaction (issue #28): one INSERT, and a history row per change."""
    if not changes or changes[0].current is not None:
        raise ValueError("a new booking's changes start from no status")
    for before, after in zip(changes, changes[1:], strict=False):
        if after.current != before.target:
            raise IllegalTransition(after.current, after.target, after.reason)
    fields: dict[str, Any] = {}
    for change in changes:
        fields |= change.fields
    return changes[-1].target, fields


def replay(history: list[tuple[int | None, int]]) -> Status | None:
    """Walk (from, to) pairs; return the final status, or raise if a link is broken."""
    state: Status | None = None
    for from_status, to_status in history:
        if (None if from_status is None else Status(from_status)) != state:
            raise ValueError(f"history breaks: expected from={state}, got {from_status}")
        if (state, Status(to_status)) not in ALLOWED:
            raise ValueError(f"history holds a forbidden move {state} -> {to_status}")
        state = Status(to_status)
    return state


# -- reschedules -------------------------------------------------------------------------


@dataclass(frozen=True)
class RescheduleRule:
    """Who may move a booking to another time: from which statuses, whether the terms' deadline
    (hours before the start) applies, and whether the move counts against the terms' maximum."""

    statuses: frozenset[Status]
    deadline: bool
    counted: bool


# role -> the rule. Every mover must act before the session starts. Absent: may not move it.
RESCHEDULE: dict[Role, RescheduleRule] = {
    Role.PARENT: RescheduleRule(frozenset({C}), deadline=True, counted=True),
    Role.TEACHER: RescheduleRule(frozenset({C}), deadline=False, counted=False),
    Role.ADMIN: RescheduleRule(frozenset({C}), deadline=False, counted=False),
}


class NoReschedule(StrEnum):
    """Why a booking cannot be moved now."""

    NOT_ALLOWED = "not_allowed"
    NOT_CONFIRMED = "not_confirmed"
    STARTED = "started"
    DEADLINE_PASSED = "deadline_passed"
    LIMIT_REACHED = "limit_reached"


class RescheduleRefused(AppError):
    """A move the reschedule rules do not allow; `data.reason` says which rule."""

    status_code = 409

    def __init__(self, why: NoReschedule, *, deadline_hours: int, max_reschedules: int):
        messages = {
            NoReschedule.NOT_ALLOWED: "You cannot change the time of this booking",
            NoReschedule.NOT_CONFIRMED: "Only a paid, confirmed session can be moved to another time",
            NoReschedule.STARTED: "This session has already started; its time can no longer be changed",
            NoReschedule.DEADLINE_PASSED: (
                f"The time can be changed only until {deadline_hours} hours before the start; "
                "ask the teacher, who can still move it"
            ),
            NoReschedule.LIMIT_REACHED: (
                f"This booking's time has been changed {max_reschedules} times, the most the teacher's terms allow"
            ),
        }
        super().__init__(messages[why], data={"reason": why.value})
        self.why = why


@dataclass(frozen=True)
class Move:
    """A validated reschedule: the times before and after, who moved it, the columns it sets."""

    status: Status
    from_start: datetime
    from_end: datetime
    to_start: datetime
    to_end: datetime
    by: Role
    at: datetime
    fields: dict[str, Any] = field(default_factory=dict)


def why_not_reschedule(
    status: Status,
    *,
    role: Role,
    now: datetime,
    starts_at: datetime,
    count: int,
    deadline_hours: int,
    max_reschedules: int,
) -> NoReschedule | None:
    """Why `role` may not move this booking now, or None when it may."""
    rule = RESCHEDULE.get(Role(role))
    if rule is None:
        return NoReschedule.NOT_ALLOWED
    if Status(status) not in rule.statuses:
        return NoReschedule.NOT_CONFIRMED
    if now >= starts_at:
        return NoReschedule.STARTED
    if rule.deadline and starts_at - now < timedelta(hours=deadline_hours):
        return NoReschedule.DEADLINE_PASSED
    if rule.counted and count >= max_reschedules:
        return NoReschedule.LIMIT_REACHED
    return None


def reschedule(
    status: Status,
    *,
    role: Role,
    now: datetime,
    starts_at: datetime,
    ends_at: datetime,
    new_start: datetime,
    count: int,
    deadline_hours: int,
    max_reschedules: int,
) -> Move:
    """Move a booking to `new_start`, same length; RescheduleRefused when the rules say no."""
    why = why_not_reschedule(
        status,
        role=role,
        now=now,
        starts_at=starts_at,
        count=count,
        deadline_hours=deadline_hours,
        max_reschedules=max_reschedules,
    )
    if why is not None:
        raise RescheduleRefused(why, deadline_hours=deadline_hours, max_reschedules=max_reschedules)
    new_end = new_start + (ends_at - starts_at)
    counted = RESCHEDULE[Role(role)].counted
    return Move(
        Status(status),
        starts_at,
        ends_at,
        new_start,
        new_end,
        Role(role),
        now,
        {
            "starts_at": new_start,
            "ends_at": new_end,
            "reschedule_count": count + 1 if counted else count,
            "updated_at": now,
        },
    )
