"""Mail jobs: `reminders` writes the 24 h / 1 h reminders that are due; `mail` sends the outbox
(tutorbook.flows.mail), batch after batch until nothing is due."""

from __future__ import annotations

import threading
from datetime import datetime

from tutorbook.bookings import reporting
from tutorbook.flows import mail as mail_flow
from tutorbook.flows.services import Services
from tutorbook.jobs.result import JobResult, Progress

REMINDER_BATCH = 500
MAX_BATCHES = 100  # one run sends at most this many batches; the next run takes the rest


def reminders(svc: Services, *, now: datetime, dry_run: bool = False, progress: Progress | None = None) -> JobResult:
    """Write the reminders due now (once each, however often this runs)."""
    result = JobResult("reminders", dry_run=dry_run, progress=progress)
    if dry_run:
        return result
    start = now
    while True:
        added, batch = svc.tx_sync(reporting.remind, now=now, start=start, limit=REMINDER_BATCH)
        for booking in batch:
            result.add(booking.id, "seen")
        if added:
            result.add(None, f"written:{added}")
        if len(batch) < REMINDER_BATCH or batch[-1].starts_at <= start:
            return result
        start = batch[-1].starts_at


def mail(
    svc: Services,
    *,
    now: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> JobResult:
    """Send (or, with no SMTP configured, keep) every notification due now; once `stop` is set,
    give the rest of the batch back and end (the worker is shutting down)."""
    result = JobResult("mail", dry_run=dry_run, progress=progress)
    if dry_run:
        return result
    for _ in range(MAX_BATCHES):
        if stop is not None and stop.is_set():
            return result
        sent = mail_flow.deliver(svc, now=now, stop=stop)
        for _notification_id, outcome in sent:
            result.add(None, outcome)
        if not sent or all(outcome in ("retry", "waiting") for _, outcome in sent):
            return result
    return result
