"""A user's private calendar subscription: its URL, and the iCalendar feed its secret opens (the
paid sessions, with the same UIDs as the invites the mail sends)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tutorbook.bookings import lists
from tutorbook.bookings import repository as bookings
from tutorbook.bookings.lifecycle import Status
from tutorbook.config import Settings
from tutorbook.flows.mail_content import calendar_entry
from tutorbook.notifications import calendar
from tutorbook.notifications import service as notices
from tutorbook.series import invite
from tutorbook.series import repository as series_repo


def feed_url(settings: Settings, secret: str) -> str:
    """The subscription URL a calendar app is given for this secret."""
    return f"{settings.public_url.rstrip('/')}/calendar/{secret}.ics"


FEED_HISTORY = timedelta(days=90)


def feed(session: Session, *, secret: str, settings: Settings, now: datetime) -> bytes | None:
    """The iCalendar feed the secret opens (None when unknown or revoked): the user's paid
    sessions from 90 days back, with the same UIDs as the invites."""
    user = notices.calendar_owner(session, secret=secret)
    if user is None:
        return None
    found = lists.for_calendar(session, user_id=user.id, since=now - FEED_HISTORY)
    in_series = series_repo.series_ids(session, [b.id for b in found])
    entries = [
        calendar_entry(
            booking,
            names=lists.names_for(session, booking),
            sequence=bookings.version(session, booking.id),
            cancelled=booking.status == Status.CANCELLED,
            settings=settings,
        )
        for booking in found
        if booking.id not in in_series
    ]
    weekly = []
    for series_id in dict.fromkeys(in_series.values()):  # each series once, as one recurring event
        series = series_repo.get(session, series_id)
        if series is not None:
            weekly.append(invite.entry(session, series=series, settings=settings))
    return calendar.feed(
        entries,
        name=f"{settings.product_name}: {user.full_name}",
        public_url=settings.public_url,
        now=now,
        series=weekly,
    )
