"""The `series` job (issue #29): a card series' later weeks, each charged off-session with the
saved card `TUTORBOOK_SERIES_CHARGE_DAYS_BEFORE` days before it starts; a week whose charge failed
and was not paid through its link by its deadline cancelled alone; the weeks of a series whose
first checkout was never paid (no card saved) let go."""

from __future__ import annotations

from datetime import datetime

from tutorbook.flows import series as flows
from tutorbook.flows.services import Services
from tutorbook.jobs.result import JobResult, Progress
from tutorbook.series import charging

BATCH = 200


def series(svc: Services, *, now: datetime, dry_run: bool = False, progress: Progress | None = None) -> JobResult:
    """One pass: let go of abandoned series' weeks, cancel the overdue ones, charge the due ones."""
    result = JobResult("series", dry_run=dry_run, progress=progress)
    for booking_id in svc.tx_sync(charging.abandoned, limit=BATCH):
        if dry_run:
            result.add(booking_id, "would_cancel")
        else:
            result.attempt(booking_id, lambda b=booking_id: svc.tx_sync(charging.cancel_abandoned, booking_id=b, now=now))
    for booking_id in svc.tx_sync(charging.overdue, now=now, limit=BATCH):
        if dry_run:
            result.add(booking_id, "would_cancel")
        else:
            result.attempt(booking_id, lambda b=booking_id: svc.tx_sync(charging.cancel_overdue, booking_id=b, now=now))
    for booking_id in svc.tx_sync(charging.due, now=now, limit=BATCH):
        result.attempt(booking_id, lambda b=booking_id: flows.charge_week(svc, booking_id=b, now=now, dry_run=dry_run))
    return result
