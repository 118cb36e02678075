"""The `calendar-sync` job: fetch every connected calendar (conditional GET) and store its busy times."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from tutorbook.calendars import service as calendars
from tutorbook.flows import calendars as calendar_flows
from tutorbook.flows.services import Services
from tutorbook.jobs.result import JobResult, Progress

# Calendars fetched per run at most (the longest unfetched first; the rest wait for the next run).
BATCH = 500


def calendar_sync(
    svc: Services, *, now: datetime, dry_run: bool = False, progress: Progress | None = None
) -> JobResult:
    """Fetch each calendar and replace its busy periods; a paid session one now overlaps is told
    to its teacher (never cancelled). Items are calendars, not bookings: their ids are in the log."""
    result = JobResult("calendar-sync", dry_run=dry_run, progress=progress)
    due = svc.tx_sync(calendars.due, limit=BATCH)
    for calendar, zone in due:
        if dry_run:
            result.add(None, "would_sync")
        else:
            result.attempt(None, partial(calendar_flows.sync_one, svc, calendar=calendar, zone=zone, now=now))
    return result
