"""How pages show money ("USD 45.00") and times (in the viewer's zone, the zone named)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from tutorbook.clock import as_utc, iso_z

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


def local(value: datetime, zone: str) -> datetime:
    """`value` on the wall clock of `zone`."""
    return as_utc(value).astimezone(ZoneInfo(zone))


def day(value: datetime, zone: str) -> str:
    """ "Tue 2 Dec 2026" in `zone`."""
    d = local(value, zone)
    return f"{d:%a} {d.day} {d:%b %Y}"


def clock(value: datetime, zone: str) -> str:
    """ "15:00" in `zone`."""
    return f"{local(value, zone):%H:%M}"


def when(start: datetime, end: datetime, zone: str) -> str:
    """ "Tue 2 Dec 2026, 15:00–16:00 GMT" in `zone` (the abbreviation names the zone)."""
    s, e = local(start, zone), local(end, zone)
    end_text = f"{e:%H:%M}" if e.date() == s.date() else f"{day(end, zone)} {e:%H:%M}"
    return f"{day(start, zone)}, {s:%H:%M}–{end_text} {s:%Z}"


def reason_text(reason: str | None) -> str:
    """A cancellation reason in words."""
    return CANCEL_REASONS.get(reason or "", "cancelled")


FILTERS = {
    "money": money,
    "day": day,
    "clock": clock,
    "when": when,
    "iso": iso_z,
    "reason_text": reason_text,
}
