"""Syncing a teacher's calendar: fetch it with no transaction open, then store its busy periods
and tell the teacher of paid sessions they now overlap, in one transaction."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from tutorbook.bookings import busy
from tutorbook.calendars import fetch, ics
from tutorbook.calendars import service as calendars
from tutorbook.calendars.models import TeacherCalendar
from tutorbook.calendars.schemas import CalendarOut
from tutorbook.config import Settings
from tutorbook.flows.services import Services

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


async def connect(svc: Services, *, teacher_id: uuid.UUID, url: str, now: datetime) -> CalendarOut:
    """Connect a calendar and read it at once (on a worker thread: the fetch is blocking and
    bounded by its timeout), so the teacher sees straight away whether the address works."""
    settings = svc.settings
    added = await svc.tx(calendars.add, teacher_id=teacher_id, url=url, limits=limits(settings), now=now)
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
