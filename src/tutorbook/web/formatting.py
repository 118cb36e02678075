"""How pages show money ("USD 45.00") and times (in the viewer's zone and language: tutorbook.localtime)."""

from __future__ import annotations

from tutorbook.clock import iso_z
from tutorbook.localtime import clock, day, local, long_day, when, zone_name

# Stripe's zero- and three-decimal currencies (https://docs.stripe.com/currencies); the sandbox
# keeps its own copy because it must not depend on the app.
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())

CANCEL_REASONS = {
    "payment_cancelled": "the checkout was left without paying",
    "checkout_expired": "the checkout expired before payment",
    "payment_failed": "the payment failed",
    "checkout_failed": "the payment page could not be opened",
    "parent_cancelled": "cancelled by the parent",
    "teacher_cancelled": "cancelled by the teacher",
    "admin_cancelled": "cancelled by Tutorbook",
}


def money(amount: int, currency: str) -> str:
    """Minor units with the currency: (4500, "usd") -> "USD 45.00", (4500, "jpy") -> "JPY 4,500"."""
    code = currency.lower()
    decimals = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    return f"{code.upper()} {amount / 10**decimals:,.{decimals}f}"


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
