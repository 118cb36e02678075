"""iCalendar (RFC 5545/5546) with the `icalendar` package: the invite in a confirmation
(METHOD:REQUEST), its cancellation (METHOD:CANCEL, same UID, higher SEQUENCE), and a user's
subscription feed. A weekly series (issue #29) is one event with an RRULE, an EXDATE for each
week not held and a RECURRENCE-ID override for each moved one, on the teacher's wall clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

PRODID = "-//Tutorbook//Notifications//EN"


@dataclass(frozen=True)
class Session:
    """What a calendar entry shows of one booking."""

    booking_id: uuid.UUID
    sequence: int
    starts_at: datetime
    ends_at: datetime
    summary: str
    description: str
    meeting_url: str | None
    cancelled: bool = False


def uid(booking_id: uuid.UUID, public_url: str) -> str:
    """The booking's UID: the same in every invite, update, cancellation and the feed."""
    host = urlsplit(public_url).hostname or "tutorbook.invalid"
    return f"booking-{booking_id}@{host}"


@dataclass(frozen=True)
class Series:
    """What a calendar shows of a weekly series: week k starts k weeks after `first_starts_at` on
    the wall clock of `zone`; `excluded`: the original starts of the weeks not held (skipped or
    cancelled); `moved`: (original start, new start, new end) of each week moved."""

    series_id: uuid.UUID
    sequence: int
    first_starts_at: datetime
    minutes: int
    weeks: int
    zone: str
    summary: str
    description: str
    excluded: tuple[datetime, ...] = ()
    moved: tuple[tuple[datetime, datetime, datetime], ...] = field(default=())
    cancelled: bool = False  # no week is held any more


def series_uid(series_id: uuid.UUID, public_url: str) -> str:
    """The series' UID: the same in every invite of it, the download and the feed."""
    host = urlsplit(public_url).hostname or "tutorbook.invalid"
    return f"series-{series_id}@{host}"


def _series_events(s: Series, *, public_url: str, now: datetime) -> list[Event]:
    tz = ZoneInfo(s.zone)
    length = timedelta(minutes=s.minutes)

    def local(at: datetime) -> datetime:
        return at.astimezone(tz)

    def common(event: Event, start: datetime, end: datetime) -> Event:
        event.add("uid", series_uid(s.series_id, public_url))
        event.add("sequence", s.sequence)
        event.add("dtstamp", now)
        event.add("dtstart", local(start))
        event.add("dtend", local(end))
        event.add("summary", s.summary)
        event.add("description", s.description)
        event.add("status", "CANCELLED" if s.cancelled else "CONFIRMED")
        return event

    master = common(Event(), s.first_starts_at, s.first_starts_at + length)
    master.add("rrule", {"freq": "weekly", "count": s.weeks})
    for start in s.excluded:
        master.add("exdate", local(start))
    found = [master]
    for original, start, end in s.moved:
        override = common(Event(), start, end)
        override.add("recurrence-id", local(original))
        found.append(override)
    return found


def series_invite(
    s: Series, *, organizer: str, attendee: str, attendee_name: str, public_url: str, now: datetime
) -> bytes:
    """One REQUEST for the whole series (a CANCEL once no week is held) for one attendee."""
    cal = _calendar("CANCEL" if s.cancelled else "REQUEST")
    who = vCalAddress(f"mailto:{attendee}")
    who.params["cn"] = vText(attendee_name)
    who.params["role"] = vText("REQ-PARTICIPANT")
    for event in _series_events(s, public_url=public_url, now=now):
        event.add("organizer", vCalAddress(f"mailto:{organizer}"))
        event.add("attendee", who, encode=False)
        cal.add_component(event)
    cal.add_missing_timezones()
    return bytes(cal.to_ical())


def _event(s: Session, *, public_url: str, now: datetime) -> Event:
    event = Event()
    event.add("uid", uid(s.booking_id, public_url))
    event.add("sequence", s.sequence)
    event.add("dtstamp", now)
    event.add("dtstart", s.starts_at)
    event.add("dtend", s.ends_at)
    event.add("summary", s.summary)
    event.add("description", s.description)
    event.add("status", "CANCELLED" if s.cancelled else "CONFIRMED")
    if s.meeting_url:
        event.add("location", s.meeting_url)
        event.add("url", s.meeting_url)
    return event


def _calendar(method: str | None) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method:
        cal.add("method", method)
    return cal


def invite(s: Session, *, organizer: str, attendee: str, attendee_name: str, public_url: str, now: datetime) -> bytes:
    """A REQUEST (or, for a cancelled session, a CANCEL) for one attendee."""
    cal = _calendar("CANCEL" if s.cancelled else "REQUEST")
    event = _event(s, public_url=public_url, now=now)
    org = vCalAddress(f"mailto:{organizer}")
    event.add("organizer", org)
    who = vCalAddress(f"mailto:{attendee}")
    who.params["cn"] = vText(attendee_name)
    who.params["role"] = vText("REQ-PARTICIPANT")
    event.add("attendee", who, encode=False)
    cal.add_component(event)
    return bytes(cal.to_ical())


def feed(
    sessions: list[Session], *, name: str, public_url: str, now: datetime, series: list[Series] | None = None
) -> bytes:
    """A subscription feed (no METHOD): every session, cancelled ones marked CANCELLED; each
    weekly series as one recurring event."""
    cal = _calendar(None)
    cal.add("x-wr-calname", name)
    for s in sessions:
        cal.add_component(_event(s, public_url=public_url, now=now))
    for one in series or []:
        for event in _series_events(one, public_url=public_url, now=now):
            cal.add_component(event)
    if series:
        cal.add_missing_timezones()
    return bytes(cal.to_ical())
