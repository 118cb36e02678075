"""The periodic jobs, by name, and `run()`: one run with its structured log line and metrics.

`tutorbook serve` runs them on a schedule (jobs/scheduler.py), `tutorbook worker` runs only
that schedule, `tutorbook jobs run NAME` runs one now.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tutorbook.clock import utc_now
from tutorbook.config import Settings
from tutorbook.flows.services import Services
from tutorbook.jobs import runs
from tutorbook.jobs.calendars import calendar_sync
from tutorbook.jobs.credits import credits_job
from tutorbook.jobs.mail import mail, reminders
from tutorbook.jobs.reconcile import reconcile
from tutorbook.jobs.result import Item, JobResult, Progress
from tutorbook.jobs.series import series
from tutorbook.jobs.tasks import complete, expire, meeting_links, purge
from tutorbook.metrics import Metrics

log = logging.getLogger("tutorbook.jobs")


@dataclass(frozen=True)
class Job:
    """A periodic job: the function that runs it once, and the setting (a field of Settings,
    TUTORBOOK_ + its name in capitals) that says how many seconds apart it runs."""

    run: Callable[..., JobResult]
    interval_setting: str


# The one table of the jobs, in the order run_all() runs them: settle payments before completing
# and linking; mail last.
JOBS: dict[str, Job] = {
    "expire": Job(expire, "job_expire_interval_s"),
    "series": Job(series, "job_series_interval_s"),
    "reconcile": Job(reconcile, "job_reconcile_interval_s"),
    "complete": Job(complete, "job_complete_interval_s"),
    "meeting-links": Job(meeting_links, "job_meetings_interval_s"),
    "purge": Job(purge, "job_purge_interval_s"),
    "credits": Job(credits_job, "job_credits_interval_s"),
    "calendar-sync": Job(calendar_sync, "job_calendar_sync_interval_s"),
    "reminders": Job(reminders, "job_reminders_interval_s"),
    "mail": Job(mail, "job_mail_interval_s"),
}

__all__ = ["JOBS", "Item", "Job", "JobResult", "interval", "run", "run_all"]


def interval(settings: Settings, name: str) -> float:
    """Seconds between runs of job `name` (0 or less: not scheduled)."""
    return float(getattr(settings, JOBS[name].interval_setting))


def run(
    name: str,
    svc: Services,
    *,
    now: datetime,
    dry_run: bool = False,
    metrics: Metrics | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> JobResult:
    """Run job `name` once; log a summary line; count it in `metrics` and keep it in `job_runs`
    (dry runs are neither)."""
    started, started_at = time.perf_counter(), utc_now()
    try:
        result = JOBS[name].run(svc, now=now, dry_run=dry_run, progress=progress, **options)
    except Exception as exc:
        if not dry_run:
            if metrics is not None:
                metrics.inc("tutorbook_jobs_runs_total", job=name, result="error")
            error = f"{type(exc).__name__}: {exc}"
            runs.record(svc, job=name, started_at=started_at, finished_at=utc_now(), result=None, error=error)
        raise
    ms = round((time.perf_counter() - started) * 1000, 1)
    log.info("job run", extra={"job": name, "dry_run": dry_run, "counts": result.counts(), "ms": ms})
    if metrics is not None and not dry_run:
        metrics.inc("tutorbook_jobs_runs_total", job=name, result="ok")
        for outcome, n in result.counts().items():
            metrics.inc("tutorbook_jobs_items_total", n, job=name, outcome=outcome)
        metrics.set("tutorbook_jobs_last_success_timestamp_seconds", time.time(), job=name)
    if not dry_run:
        runs.record(svc, job=name, started_at=started_at, finished_at=utc_now(), result=result, error=None)
    return result


def run_all(
    svc: Services, *, now: datetime, dry_run: bool = False, metrics: Metrics | None = None
) -> list[JobResult]:
    """Every job once, in order: a full pass (tests; an operator after an outage)."""
    return [run(name, svc, now=now, dry_run=dry_run, metrics=metrics) for name in JOBS]
