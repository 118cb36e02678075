"""Syncing a teacher's calendar: fetch it with no transaction open, then store its busy periods
and tell the teacher of paid sessions they now overlap, in one transaction."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from tutorbook.bookings import busy
from tutorbook.bookings import repository as bookings_repo
from tutorbook.calendars import fetch, ics
from tutorbook.calendars import service as calendars
from tutorbook.calendars.models import TeacherCalendar
from tutorbook.calendars.schemas import CalendarOut
from tutorbook.config import Settings
from tutorbook.errors import Conflict
from tutorbook.flows.services import Services
from tutorbook.meetings import MeetingError

# The Google adapter's free/busy (meetings/google.py, GoogleMeetProvider.busy).
GoogleBusy = Callable[..., list[tuple[datetime, datetime]]]

log = logging.getLogger("tutorbook.calendars")


def limits(settings: Settings) -> fetch.Limits:
    return fetch.Limits(
        allow_http=settings.calendar_allow_http,
        allow_private=settings.calendar_allow_private,
        max_bytes=settings.calendar_max_bytes,
        timeout=settings.calendar_timeout_seconds,
    )


def stale_after(settings: Settings) -> timedelta:
    return timedelta(hours=settings.calendar_stale_hours)


class GoogleNotSetUp(Conflict):
    message = "Google Calendar is not set up on this site; connect the calendar by its secret iCal address"


def google_reader(svc: Services) -> GoogleBusy | None:
    """The Google adapter's free/busy, when the site uses it (TUTORBOOK_MEETING_PROVIDER=google)."""
    reader = getattr(svc.meetings, "busy", None)
    return reader if callable(reader) else None


async def connect(
    svc: Services,
    *,
    teacher_id: uuid.UUID,
    url: str | None = None,
    google_calendar_id: str | None = None,
    now: datetime,
) -> CalendarOut:
    """Connect a calendar (a secret iCal address or a Google calendar's id) and read it at once
    (on a worker thread: the fetch is blocking and bounded by its timeout), so the teacher sees
    straight away whether it can be read."""
    settings = svc.settings
    if google_calendar_id is not None:
        if google_reader(svc) is None:
            raise GoogleNotSetUp()
        added = await svc.tx(calendars.add_google, teacher_id=teacher_id, calendar_id=google_calendar_id, now=now)
    else:
        added = await svc.tx(calendars.add, teacher_id=teacher_id, url=url or "", limits=limits(settings), now=now)
    calendar_id = added.id
    found = await svc.tx(calendars.for_sync, calendar_id=calendar_id)
    if found is not None:
        await asyncio.to_thread(sync_one, svc, calendar=found[0], zone=found[1], now=now)
    return await svc.read(
        calendars.one, teacher_id=teacher_id, calendar_id=calendar_id, now=now, stale_after=stale_after(settings)
    )


def sync_one(svc: Services, *, calendar: TeacherCalendar, zone: str, now: datetime) -> str:
    """Fetch one calendar and store what it gave: "synced", "unchanged" (304), "failed" (the
    error kept for the teacher, nothing new blocked), "stale" (failed past the limit: its busy
    periods dropped), "gone" (removed meanwhile)."""
    settings = svc.settings
    if calendar.kind == "google":
        return _sync_google(svc, calendar=calendar, now=now)
    own_host = urlsplit(settings.public_url).hostname or "tutorbook.invalid"
    try:
        got = fetch.fetch(
            calendar.url, limits=limits(settings), etag=calendar.etag, last_modified=calendar.last_modified
        )
        periods = None
        if got.body is not None:
            horizon = now + timedelta(days=settings.calendar_horizon_days)
            periods = ics.busy_periods(
                got.body, zone=zone, start=now - timedelta(days=1), end=horizon, own_host=own_host
            )
    except (fetch.FetchError, ics.BadCalendar) as exc:
        message = exc.message if isinstance(exc, fetch.FetchError) else str(exc)
        log.info(
            "calendar sync failed",
            extra={"calendar_id": str(calendar.id), "calendar": calendar.masked_url, "error": message},
        )
        dropped = svc.tx_sync(
            calendars.record_failure, calendar_id=calendar.id, error=message, now=now, stale_after=stale_after(settings)
        )
        return "stale" if dropped else "failed"
    stored = svc.tx_sync(
        store, calendar_id=calendar.id, periods=periods, etag=got.etag, last_modified=got.last_modified, now=now
    )
    if stored is None:
        return "gone"
    return "unchanged" if periods is None else "synced"


def _sync_google(svc: Services, *, calendar: TeacherCalendar, now: datetime) -> str:
    """A Google calendar's busy times from the adapter's free/busy. Google's answer has no event
    ids, so Tutorbook's own events (the Meet adapter writes each session into the teacher's
    calendar) are told apart by their time: a busy period exactly a holding booking's is left out."""
    start, end = now - timedelta(days=1), now + timedelta(days=svc.settings.calendar_horizon_days)
    reader = google_reader(svc)
    try:
        if reader is None:
            raise GoogleNotSetUp()
        email = svc.tx_sync(calendars.teacher_email, teacher_id=calendar.teacher_id)
        times = reader(teacher_email=email, calendar_ids=[calendar.url], start=start, end=end)
    except (MeetingError, GoogleNotSetUp) as exc:
        message = exc.message if isinstance(exc, GoogleNotSetUp) else str(exc)
        log.info("calendar sync failed", extra={"calendar_id": str(calendar.id), "error": message})
        dropped = svc.tx_sync(
            calendars.record_failure,
            calendar_id=calendar.id,
            error=message,
            now=now,
            stale_after=stale_after(svc.settings),
        )
        return "stale" if dropped else "failed"
    own = set(svc.tx_sync(bookings_repo.busy_intervals, teacher_id=calendar.teacher_id, start=start, end=end))
    periods = [ics.Busy(s, e) for s, e in times if (s, e) not in own and e > s]
    stored = svc.tx_sync(store, calendar_id=calendar.id, periods=periods, etag=None, last_modified=None, now=now)
    return "gone" if stored is None else "synced"


def store(
    session: Session,
    *,
    calendar_id: uuid.UUID,
    periods: Sequence[ics.Busy] | None,
    etag: str | None,
    last_modified: str | None,
    now: datetime,
) -> uuid.UUID | None:
    """One transaction: the new busy periods, and an email for each paid session they overlap."""
    calendar = calendars.record_sync(
        session, calendar_id=calendar_id, periods=periods, etag=etag, last_modified=last_modified, now=now
    )
    if calendar is None:
        return None
    if periods is not None:
        busy.note_conflicts(session, teacher_id=calendar.teacher_id, now=now)
    return calendar.teacher_id
