"""The calendars the tests serve: times on a Berlin teacher's wall clock, relative to today so
they stay ahead, with the next clock change found, not assumed."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ZONE = "Europe/Berlin"
TZ = ZoneInfo(ZONE)


def next_monday(weeks: int = 2) -> date:
    today = datetime.now(TZ).date()
    return today + timedelta(days=7 * weeks - today.weekday())


def next_clock_change(after: date) -> date:
    """The first day after `after` whose length on the Berlin clock is not 24 hours."""
    day = after
    while True:
        day += timedelta(days=1)
        start = datetime.combine(day, time(0), tzinfo=TZ)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=TZ)
        if end.astimezone(UTC) - start.astimezone(UTC) != timedelta(hours=24):
            return day


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=TZ).astimezone(UTC)


def _stamp(day: date, hour: int) -> str:
    return f"{day:%Y%m%d}T{hour:02d}0000"


def calendar(*events: str) -> bytes:
    body = "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//calendars//EN", *events, "END:VCALENDAR"])
    return (body + "\r\n").encode()


def event(uid: str, *lines: str) -> str:
    return "\r\n".join(["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *lines, "END:VEVENT"])


def timed(day: date, start_hour: int, end_hour: int) -> list[str]:
    return [f"DTSTART;TZID={ZONE}:{_stamp(day, start_hour)}", f"DTEND;TZID={ZONE}:{_stamp(day, end_hour)}"]


def the_calendar(monday: date, clock_change: date, *, own_host: str) -> bytes:
    """Weekly 10-11 on Mondays (4 times; the 2nd left out by EXDATE, the 3rd moved to 15-16 by an
    override), an all-day event on the day the clocks change, a free event, a cancelled one, one
    of Tutorbook's own (its UID), and a 'Private dentist' whose title must never show."""
    second, third = monday + timedelta(days=7), monday + timedelta(days=14)
    return calendar(
        event(
            "weekly-1@example.com",
            "SUMMARY:Choir rehearsal",
            *timed(monday, 10, 11),
            "RRULE:FREQ=WEEKLY;COUNT=4",
            f"EXDATE;TZID={ZONE}:{_stamp(second, 10)}",
        ),
        event(
            "weekly-1@example.com",
            "SUMMARY:Choir rehearsal (moved)",
            f"RECURRENCE-ID;TZID={ZONE}:{_stamp(third, 10)}",
            *timed(third, 15, 16),
        ),
        event("allday@example.com", "SUMMARY:Family day", f"DTSTART;VALUE=DATE:{clock_change:%Y%m%d}"),
        event("free@example.com", "SUMMARY:Maybe lunch", "TRANSP:TRANSPARENT", *timed(monday, 13, 14)),
        event("cancelled@example.com", "SUMMARY:Called off", "STATUS:CANCELLED", *timed(monday, 16, 17)),
        event(f"booking-{uuid.uuid4()}@{own_host}", "SUMMARY:Mathematics: Kid with me", *timed(monday, 12, 13)),
        event("dentist@example.com", "SUMMARY:Private dentist", *timed(monday, 8, 9)),
    )


def expected_busy(monday: date, clock_change: date) -> list[tuple[datetime, datetime]]:
    third, fourth = monday + timedelta(days=14), monday + timedelta(days=21)
    day_after = clock_change + timedelta(days=1)
    return sorted(
        [
            (local(monday, 8), local(monday, 9)),
            (local(monday, 10), local(monday, 11)),
            (local(third, 15), local(third, 16)),
            (local(fourth, 10), local(fourth, 11)),
            (datetime.combine(clock_change, time(0), tzinfo=TZ).astimezone(UTC), local(day_after, 0)),
        ]
    )
