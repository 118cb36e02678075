"""A series as calendars see it (issue #29): one recurring event (RRULE) with an EXDATE for each
week not held (skipped or cancelled) and a RECURRENCE-ID override for each moved week, its
SEQUENCE raised by every change (`repository.sequence`). The same entry in the emailed invites,
the download and the feed."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from tutorbook.bookings import lists
from tutorbook.bookings.lifecycle import Status
from tutorbook.config import Settings
from tutorbook.identity import AuthUser
from tutorbook.notifications import calendar
from tutorbook.series import repository as repo
from tutorbook.series import service, weeks
from tutorbook.series.models import Series


def entry(session: Session, *, series: Series, settings: Settings) -> calendar.Series:
    """The series' one calendar entry as it is now."""
    found = repo.occurrences(session, series.id)
    held = {o.week: (o, b) for o, b in found if b.status != Status.CANCELLED}
    starts = weeks.starts(series.first_starts_at, weeks=series.weeks, zone=series.time_zone)
    teacher, student = lists.names_for(session, found[0][1]) if found else ("", "")
    public = settings.public_url.rstrip("/")
    return calendar.Series(
        series_id=series.id,
        sequence=repo.sequence(session, series.id),
        first_starts_at=series.first_starts_at,
        minutes=series.duration_minutes,
        weeks=series.weeks,
        zone=series.time_zone,
        summary=f"{series.subject} with {teacher} for {student} (weekly)",
        description=f"{settings.product_name} weekly lessons. Each lesson's join link: {public}/my-bookings",
        excluded=tuple(start for k, start in enumerate(starts) if k not in held),
        moved=tuple(
            (o.original_starts_at, b.starts_at, b.ends_at)
            for o, b in held.values()
            if b.starts_at != o.original_starts_at
        ),
        cancelled=not held,
    )


def of_booking(session: Session, *, booking_id: uuid.UUID, settings: Settings) -> calendar.Series | None:
    """The calendar entry of the series a booking belongs to (None for a lone booking)."""
    found = repo.of_booking(session, booking_id)
    return None if found is None else entry(session, series=found[0], settings=settings)


def download(session: Session, *, user: AuthUser, series_id: uuid.UUID, settings: Settings, now: datetime) -> bytes:
    """ "Add to calendar" for a series: its invite as it is now, for the one asking."""
    series = service.get_for(session, user=user, series_id=series_id)
    return calendar.series_invite(
        entry(session, series=series, settings=settings),
        organizer=_address(settings.sender),
        attendee=user.email,
        attendee_name=user.full_name,
        public_url=settings.public_url,
        now=now,
    )


def _address(sender: str) -> str:
    return sender.rsplit("<", 1)[-1].rstrip(">").strip() if "<" in sender else sender.strip()
