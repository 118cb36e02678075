"""Busy periods from an iCalendar file (pure): every occurrence in a range, recurrences expanded by
`recurring-ical-events` (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides), all-day events on the
teacher's wall clock; free, cancelled and Tutorbook's own events left out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

# A calendar with more occurrences than this in the horizon is cut there (a runaway RRULE).
MAX_OCCURRENCES = 20_000
# The UIDs of Tutorbook's own events: booking-<uuid>@<host> in the invites and the feed
# (notifications/calendar.py), <uuid>@tutorbook in "Add to calendar" (web/booking_pages.py).
_OWN_UID = re.compile(r"^(booking-)?[0-9a-f-]{36}@(?P<host>.+)$", re.IGNORECASE)
DOWNLOAD_HOST = "tutorbook"


class BadCalendar(ValueError):
    """The file is not an iCalendar a teacher's calendar app would publish."""


@dataclass(frozen=True)
class Busy:
    """One busy occurrence, in UTC: the event's own time (its title is private and not kept)."""

    starts_at: datetime
    ends_at: datetime
    all_day: bool = False


def busy_periods(data: bytes, *, zone: str, start: datetime, end: datetime, own_host: str) -> list[Busy]:
    """The busy occurrences touching [start, end), sorted, at most MAX_OCCURRENCES."""
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except (ValueError, IndexError, KeyError) as exc:
        raise BadCalendar("This address does not give an iCalendar (.ics) file") from exc
    if calendar.name != "VCALENDAR":
        raise BadCalendar("This address does not give an iCalendar (.ics) file")
    tz = ZoneInfo(zone)
    out: list[Busy] = []
    try:
        # A day wider on each side: an all-day event's day is judged on the teacher's clock below.
        occurrences = recurring_ical_events.of(calendar, components=["VEVENT"]).between(
            start - timedelta(days=1), end + timedelta(days=1)
        )
    except Exception as exc:  # the library raises many kinds on a broken rule; all mean the same here
        raise BadCalendar(f"This calendar has an event the app cannot read ({type(exc).__name__})") from exc
    for event in occurrences:
        if not _blocks(event, own_host=own_host):
            continue
        span = _span(event, tz)
        if span is not None and span[1] > start and span[0] < end:
            out.append(Busy(span[0], span[1], all_day=_is_date(event.get("DTSTART"))))
            if len(out) >= MAX_OCCURRENCES:
                break
    return sorted(out, key=lambda b: (b.starts_at, b.ends_at))


def _blocks(event: icalendar.Event, *, own_host: str) -> bool:
    """Whether the event makes the teacher busy: not free, not cancelled, not one of ours."""
    if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return False
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return False
    own = _OWN_UID.match(str(event.get("UID", "")))
    return not (own and own.group("host").lower() in (own_host.lower(), DOWNLOAD_HOST))


def _is_date(prop: object) -> bool:
    value = getattr(prop, "dt", None)
    return isinstance(value, date) and not isinstance(value, datetime)


def _span(event: icalendar.Event, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    start_prop = event.get("DTSTART")
    if start_prop is None:
        return None
    first = _instant(start_prop.dt, tz)
    end_prop = event.get("DTEND")
    if end_prop is not None:
        last = _instant(end_prop.dt, tz)
    elif event.get("DURATION") is not None:
        last = _instant(start_prop.dt + event.get("DURATION").dt, tz)
    elif _is_date(start_prop):
        last = _instant(start_prop.dt + timedelta(days=1), tz)  # RFC 5545: an all-day event lasts one day
    else:
        return None  # an instant takes no time
    return (first, last) if last > first else None


def _instant(value: date | datetime, tz: ZoneInfo) -> datetime:
    """A DATE is that day's midnight on the teacher's clock (a day across a clock change is 23 or 25
    hours); a floating time is on the teacher's clock too."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0), tzinfo=tz)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)
