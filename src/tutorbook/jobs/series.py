"""The `series` job (issue #29): a card series' later weeks, each charged off-session with the
saved card `TUTORBOOK_SERIES_CHARGE_DAYS_BEFORE` days before it starts; a week whose charge failed
and was not paid through its link by its deadline cancelled alone; the weeks of a series whose
first checkout was never paid (no card saved) let go."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
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
            result.attempt(booking_id, functools.partial(_tx, svc, charging.cancel_abandoned, booking_id, now))
    for booking_id in svc.tx_sync(charging.overdue, now=now, limit=BATCH):
        if dry_run:
            result.add(booking_id, "would_cancel")
        else:
            result.attempt(booking_id, functools.partial(_tx, svc, charging.cancel_overdue, booking_id, now))
    for booking_id in svc.tx_sync(charging.due, now=now, limit=BATCH):
        charge = functools.partial(flows.charge_week, svc, booking_id=booking_id, now=now, dry_run=dry_run)
        result.attempt(booking_id, charge)
    return result


def _tx(svc: Services, fn: Callable[..., str], booking_id: uuid.UUID, now: datetime) -> str:
    return svc.tx_sync(fn, booking_id=booking_id, now=now)
