"""A session as an iCalendar (.ics) file, for "Add to calendar" (RFC 5545, with `icalendar`)."""

from __future__ import annotations

from datetime import datetime

from icalendar import Calendar, Event

from tutorbook.clock import as_utc


def event(
    *, uid: str, summary: str, starts_at: datetime, ends_at: datetime, url: str, now: datetime, public_url: str
) -> bytes:
    """One VEVENT in a VCALENDAR; times in UTC, so every calendar shows them on its own clock."""
    cal = Calendar()
    cal.add("prodid", "-//Tutorbook//Sessions//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    ev = Event()
    ev.add("uid", uid)
    ev.add("dtstamp", as_utc(now))
    ev.add("dtstart", as_utc(starts_at))
    ev.add("dtend", as_utc(ends_at))
    ev.add("summary", summary)
    if url:
        ev.add("location", url)
        ev.add("url", url)
        ev.add("description", f"Join the meeting: {url}")
    else:
        ev.add("description", f"The meeting link appears in Tutorbook: {public_url.rstrip('/')}/my-bookings")
    cal.add_component(ev)
    return cal.to_ical()
