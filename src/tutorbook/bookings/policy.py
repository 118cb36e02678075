"""The refund policy for cancelling a Confirmed booking. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from tutorbook.bookings.lifecycle import Reason


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
