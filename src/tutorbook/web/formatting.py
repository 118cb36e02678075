"""How pages show money ("USD 45.00") and times (in the viewer's zone and language: tutorbook.localtime)."""

from __future__ import annotations

from tutorbook import currencies
from tutorbook.clock import iso_z
from tutorbook.localtime import clock, day, local, long_day, when, zone_name

CANCEL_REASONS = {
    "payment_cancelled": "the checkout was left without paying",
    "checkout_expired": "the checkout expired before payment",
    "payment_failed": "the payment failed",
    "checkout_failed": "the payment page could not be opened",
    "parent_cancelled": "cancelled by the parent",
    "teacher_cancelled": "cancelled by the teacher",
    "admin_cancelled": "cancelled by Tutorbook",
}


money = currencies.money  # (4500, "usd") -> "USD 45.00", (4500, "jpy") -> "JPY 4,500"


def reason_text(reason: str | None) -> str:
    """A cancellation reason in words."""
    return CANCEL_REASONS.get(reason or "", "cancelled")


FILTERS = {
    "money": money,
    "day": day,
    "clock": clock,
    "when": when,
    "long_day": long_day,
    "zone_name": zone_name,
    "iso": iso_z,
    "reason_text": reason_text,
}


__all__ = ["FILTERS", "clock", "day", "local", "long_day", "money", "reason_text", "when", "zone_name"]
