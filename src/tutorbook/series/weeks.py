"""The weeks of a series, pure: week k starts k weeks after the first at the same wall-clock time
in the teacher's zone (so a 16:00 lesson stays at 16:00 across a change of summer time)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

MIN_WEEKS, MAX_WEEKS = 2, 52


def starts(first: datetime, *, weeks: int, zone: str) -> list[datetime]:
    """The UTC start of each of `weeks` weeks from `first` (aware), by the wall clock of `zone`."""
    tz = ZoneInfo(zone)
    local = first.astimezone(tz).replace(tzinfo=None)
    found = []
    for k in range(weeks):
        wall = (local + timedelta(weeks=k)).replace(tzinfo=tz)
        # A wall time that does not exist that day (the clocks jump over it) is read as the one after
        # the jump; the round trip through UTC normalises it.
        found.append(wall.astimezone(UTC))
    return found


def local_date(at: datetime, *, zone: str) -> date:
    """The calendar date of `at` in `zone` (the date a week is named and skipped by)."""
    return at.astimezone(ZoneInfo(zone)).date()
