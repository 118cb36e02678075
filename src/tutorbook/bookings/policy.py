"""The refund policy for cancelling a Confirmed booking, the terms stored on a booking, and the
platform fee. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from tutorbook.bookings.lifecycle import Reason
from tutorbook.bookings.models import Booking
from tutorbook.teachers.policy import FIELDS, Terms


class RefundChoice(StrEnum):
    """The refund an admin chooses when cancelling a paid booking."""

    FULL = "full"  # everything not refunded yet
    POLICY = "policy"  # what the parent would get cancelling now
    NONE = "none"


def refund_amount(
    *,
    reason: Reason,
    price: int,
    already_refunded: int,
    starts_at: datetime,
    now: datetime,
    full_before_hours: int,
    late_percent: int,
) -> int:
    """Teacher/admin: full. Parent: full at least `full_before_hours` ahead, else `late_percent`."""
    remaining = max(price - already_refunded, 0)
    if reason != Reason.PARENT_CANCELLED:
        return remaining
    if starts_at - now >= timedelta(hours=full_before_hours):
        return remaining
    return min(remaining, price * late_percent // 100)


def full_refund_due(*, reason: Reason, starts_at: datetime, now: datetime, full_before_hours: int) -> bool:
    """Whether a cancellation by `reason` now is one the terms refund in full (a credit-paid
    lesson's credit comes back exactly then): always for the teacher or an admin."""
    return reason != Reason.PARENT_CANCELLED or starts_at - now >= timedelta(hours=full_before_hours)


def platform_fee(*, amount: int, percent: float) -> int:
    """The platform's fee on a payment of `amount` minor units: `percent` of it, rounded half up
    to a whole minor unit (15 % of 3,333 = 499.95 -> 500; of 3,330 = 499.5 -> 500), never more
    than the amount. The teacher receives the rest."""
    fee = (Decimal(amount) * Decimal(str(percent)) / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return max(0, min(amount, int(fee)))


def stored(booking: Booking, *, platform: Terms) -> Terms:
    """The terms stored on the booking when it was paid; the platform's for one paid before
    terms were stored (or not paid yet)."""
    kept = booking.terms_in_force
    if kept is None:
        return platform
    return Terms(
        full_refund_hours=kept.full_refund_hours,
        late_refund_percent=kept.late_refund_percent,
        reschedule_deadline_hours=kept.reschedule_deadline_hours,
        max_reschedules=kept.max_reschedules,
    )


def to_store(terms: Terms) -> dict[str, int]:
    """A status change's fields that keep `terms` (records.follow stores them in booking_terms)."""
    return {f"terms_{name}": getattr(terms, name) for name in FIELDS}
