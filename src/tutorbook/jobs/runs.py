"""The record of job runs (`job_runs`): written after each real run by `jobs.run`, read by the
operator console (jobs' last runs and health, the last reconciliation's findings)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.flows.services import Services
from tutorbook.jobs.models import JobRunRecord
from tutorbook.jobs.result import JobResult

log = logging.getLogger("tutorbook.jobs")
KEEP = timedelta(days=7)
# A scheduled job is overdue when it has not finished a run for this many of its intervals.
OVERDUE_INTERVALS = 3


def record(
    svc: Services,
    *,
    job: str,
    started_at: datetime,
    finished_at: datetime,
    result: JobResult | None,
    error: str | None,
) -> None:
    """Keep one run (and drop this job's runs older than a week); never raises: a job that did
    its work must not fail because its record could not be written."""
    findings = [i.to_dict() for i in result.mismatches] if result is not None else []
    run = JobRunRecord(
        job=job,
        started_at=started_at,
        finished_at=finished_at,
        ok=error is None,
        counts=result.counts() if result is not None else {},
        findings=findings,
        error=error[:500] if error else None,
    )
    try:
        svc.tx_sync(_keep, run=run)
    except Exception:
        log.exception("job run not recorded", extra={"job": job})


def _keep(session: Session, *, run: JobRunRecord) -> None:
    session.add(run)
    session.execute(
        sa.delete(JobRunRecord).where(JobRunRecord.job == run.job, JobRunRecord.finished_at < run.finished_at - KEEP)
    )


def last_runs(session: Session, names: list[str]) -> dict[str, JobRunRecord | None]:
    """Each job's newest run (None if it never ran)."""
    out: dict[str, JobRunRecord | None] = {}
    for name in names:
        stmt = (
            sa.select(JobRunRecord)
            .where(JobRunRecord.job == name)
            .order_by(JobRunRecord.finished_at.desc(), JobRunRecord.id.desc())
            .limit(1)
        )
        out[name] = session.scalar(stmt)
    return out


@dataclass(frozen=True)
class JobHealth:
    job: str
    interval_s: float
    last: JobRunRecord | None
    healthy: bool
    why: str


def health(job: str, last: JobRunRecord | None, *, interval_s: float, now: datetime) -> JobHealth:
    """Healthy: the last run succeeded and, for a scheduled job, is not overdue."""
    if last is None:
        ok = interval_s <= 0
        return JobHealth(job, interval_s, None, ok, "not scheduled" if ok else "never ran")
    if not last.ok:
        return JobHealth(job, interval_s, last, False, "the last run failed")
    if interval_s > 0 and now - last.finished_at > timedelta(seconds=interval_s * OVERDUE_INTERVALS):
        return JobHealth(job, interval_s, last, False, "overdue")
    return JobHealth(job, interval_s, last, True, "ok")
