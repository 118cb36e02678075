"""Times for people: in their zone, in their language's format (Babel/CLDR), zones by friendly name.

Kernel: used by the pages (every time they show) and by the booking flow (the checkout's line item).
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton, format_time, get_timezone_name

from tutorbook.clock import as_utc

DEFAULT_LOCALE = "en_GB"
ZONES = frozenset(available_timezones())


@lru_cache(maxsize=256)
def locale_for(tag: str | None) -> Locale:
    """A Babel locale for a BCP 47 tag ("en-US", "de"); DEFAULT_LOCALE if unknown."""
    try:
        return Locale.parse((tag or DEFAULT_LOCALE).replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse(DEFAULT_LOCALE)


def negotiate(accept_language: str | None) -> str:
    """The best locale tag from an Accept-Language header ("de-CH,de;q=0.9,en;q=0.8" -> "de_CH")."""
    tags = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        try:
            q = float(params.strip().removeprefix("q=")) if params.strip().startswith("q=") else 1.0
        except ValueError:
            q = 0.0
        if tag and tag != "*" and q > 0:
            tags.append((-q, i, tag))
    for _, _, tag in sorted(tags):
        try:
            return str(Locale.parse(tag.replace("-", "_")))
        except (UnknownLocaleError, ValueError):
            continue
    return DEFAULT_LOCALE


def known_zone(zone: str | None) -> str | None:
    return zone if zone in ZONES else None


def local(value: datetime, zone: str) -> datetime:
    """`value` on the wall clock of `zone`."""
    return as_utc(value).astimezone(ZoneInfo(zone))


def day(value: datetime, zone: str, locale: str = DEFAULT_LOCALE) -> str:
    """ "Wed, 2 Dec 2026" (en_GB), "Wed, Dec 2, 2026" (en_US) in `zone`."""
    return format_skeleton("yMMMEd", local(value, zone), locale=locale_for(locale))


def long_day(value: datetime, zone: str, locale: str = DEFAULT_LOCALE) -> str:
    """ "Wednesday 2 December" (en_GB), "Wednesday, December 2" (en_US) in `zone`."""
    return format_skeleton("MMMMEEEEd", local(value, zone), locale=locale_for(locale))


def clock(value: datetime, zone: str, locale: str = DEFAULT_LOCALE) -> str:
    """ "15:00" (en_GB) or "3:00 PM" (en_US) in `zone`."""
    return format_time(local(value, zone), "short", locale=locale_for(locale))


def abbreviation(value: datetime, zone: str) -> str:
    """The zone's abbreviation at that moment: "EST", "CEST", "IST", "+0545"."""
    return local(value, zone).tzname() or zone


def when(start: datetime, end: datetime, zone: str, locale: str = DEFAULT_LOCALE) -> str:
    """ "Wed, 1 Jul 2026, 15:00–16:00 BST" in `zone` and `locale` (the abbreviation names the zone)."""
    s, e = local(start, zone), local(end, zone)
    end_text = clock(end, zone, locale)
    if e.date() != s.date():
        end_text = f"{day(end, zone, locale)} {end_text}"
    return f"{day(start, zone, locale)}, {clock(start, zone, locale)}–{end_text} {abbreviation(start, zone)}"


def moment(value: datetime, zone: str, locale: str = DEFAULT_LOCALE) -> str:
    """One instant with its zone: "Wed, 2 Dec 2026, 15:00 GMT", "Wed, Dec 2, 2026, 3:00 PM EST"."""
    return f"{day(value, zone, locale)}, {clock(value, zone, locale)} {abbreviation(value, zone)}"


def when_in_zone(start: datetime, end: datetime, zone: str, locale: str = DEFAULT_LOCALE) -> str:
    """`when` with the zone's friendly name, for text read away from a page that names the viewer's
    zone (emails): "Wed, Dec 2, 2026, 3:00 PM–4:00 PM, Eastern Time – New York (EST)"."""
    plain = when(start, end, zone, locale).removesuffix(f" {abbreviation(start, zone)}")
    return f"{plain}, {zone_name(zone, locale, at=start)}"


def month(value: datetime | date, locale: str = DEFAULT_LOCALE) -> str:
    """A month in words: "December 2026"; "2026-12" strings are read too."""
    if isinstance(value, str):
        value = date.fromisoformat(f"{value}-01")
    return format_skeleton("yMMMM", value, locale=locale_for(locale))


def zone_name(zone: str, locale: str = DEFAULT_LOCALE, *, at: datetime | None = None) -> str:
    """A zone by its friendly name, city and abbreviation: "Eastern Time – New York (EST)"."""
    when_ = as_utc(at) if at else datetime.now(ZoneInfo("UTC"))
    abbr = abbreviation(when_, zone)
    if zone in ("UTC", "Etc/UTC", "Etc/UCT", "UCT", "Universal", "Zulu", "Etc/Universal", "Etc/Zulu"):
        return f"Coordinated Universal Time ({abbr})"
    try:
        name = get_timezone_name(ZoneInfo(zone), "long", locale=locale_for(locale), zone_variant="generic")
    except (LookupError, ValueError):
        name = ""
    city = zone.rsplit("/", 1)[-1].replace("_", " ")
    if not name or "Unknown" in name or "(" in name:
        return f"{city} ({abbr})"
    return f"{name} – {city} ({abbr})"
