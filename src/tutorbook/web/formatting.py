"""How pages show money ("USD 45.00") and times (in the viewer's zone and language: tutorbook.localtime).

The template filters take the zone and language from the page's context (`zone`, `loc`: the
viewer's) unless a template names them, so no page can forget the viewer's language."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

from tutorbook import currencies
from tutorbook.bookings import lifecycle
from tutorbook.clock import iso_z
from tutorbook.localtime import DEFAULT_LOCALE, clock, day, local, long_day, moment, month, when, zone_name

money = currencies.money  # (4500, "usd") -> "USD 45.00", (4500, "jpy") -> "JPY 4,500"


def major(amount: int, currency: str) -> str:
    """Minor units as a plain decimal for a spreadsheet: (4500, "usd") -> "45.00", (4500, "jpy") -> "4500"."""
    decimals = currencies.exponent(currency)
    return f"{amount / 10**decimals:.{decimals}f}"


def minor(text: str | None, currency: str) -> int | None:
    """An amount typed in major units ("12.50", "12,50", "1,000") as minor units; None when it is
    not a positive amount with at most the currency's decimals."""
    decimals = currencies.exponent(currency)
    raw = (text or "").strip().replace(" ", "")
    if raw.count(",") == 1 and "." not in raw and len(raw.split(",")[1]) <= decimals:
        raw = raw.replace(",", ".")  # a decimal comma
    raw = raw.replace(",", "")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal(1).scaleb(-decimals)) or value > 10**9:
        return None
    return int(value.scaleb(decimals))


reason_text = lifecycle.reason_words  # a cancellation's or a refund's reason in words


def _zone(ctx: Context, zone: str | None) -> str:
    return zone or ctx.get("zone") or "UTC"


def _loc(ctx: Context, locale: str | None) -> str:
    return locale or ctx.get("loc") or DEFAULT_LOCALE


@pass_context
def _day(ctx: Context, value: datetime, zone: str | None = None, locale: str | None = None) -> str:
    return day(value, _zone(ctx, zone), _loc(ctx, locale))


@pass_context
def _long_day(ctx: Context, value: datetime, zone: str | None = None, locale: str | None = None) -> str:
    return long_day(value, _zone(ctx, zone), _loc(ctx, locale))


@pass_context
def _clock(ctx: Context, value: datetime, zone: str | None = None, locale: str | None = None) -> str:
    return clock(value, _zone(ctx, zone), _loc(ctx, locale))


@pass_context
def _moment(ctx: Context, value: datetime, zone: str | None = None, locale: str | None = None) -> str:
    return moment(value, _zone(ctx, zone), _loc(ctx, locale))


@pass_context
def _when(ctx: Context, start: datetime, end: datetime, zone: str | None = None, locale: str | None = None) -> str:
    return when(start, end, _zone(ctx, zone), _loc(ctx, locale))


@pass_context
def _zone_name(ctx: Context, zone: str, locale: str | None = None) -> str:
    return zone_name(zone, _loc(ctx, locale))


@pass_context
def _month(ctx: Context, value: Any, locale: str | None = None) -> str:
    return month(value, _loc(ctx, locale))


FILTERS = {
    "money": money,
    "day": _day,
    "clock": _clock,
    "moment": _moment,
    "when": _when,
    "long_day": _long_day,
    "month": _month,
    "zone_name": _zone_name,
    "iso": iso_z,
    "reason_text": reason_text,
}


__all__ = [
    "FILTERS",
    "clock",
    "day",
    "local",
    "major",
    "minor",
    "long_day",
    "moment",
    "money",
    "month",
    "reason_text",
    "when",
    "zone_name",
]
