"""iCalendar (RFC 5545/5546) with the `icalendar` package: the invite in a confirmation
(METHOD:REQUEST), its cancellation (METHOD:CANCEL, same UID, higher SEQUENCE), and a user's
subscription feed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

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


def feed(sessions: list[Session], *, name: str, public_url: str, now: datetime) -> bytes:
    """A subscription feed (no METHOD): every session, cancelled ones marked CANCELLED."""
    cal = _calendar(None)
    cal.add("x-wr-calname", name)
    for s in sessions:
        cal.add_component(_event(s, public_url=public_url, now=now))
    return bytes(cal.to_ical())
