"""Each job run, kept for a week: the console's "jobs' last runs" and "the last reconciliation"
come from here, so they are the same whichever process (serve, worker) ran the job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tutorbook.db import Base, UTCDateTime


class JobRunRecord(Base):
    __tablename__ = "job_runs"
    __table_args__ = (sa.Index("ix_job_runs_job_finished", "job", "finished_at"),)

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job: Mapped[str] = mapped_column(sa.String(40))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column(sa.Boolean)
    counts: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # Reconcile's findings (items with a kind), as JobResult.to_dict() gives them.
    findings: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    error: Mapped[str | None] = mapped_column(sa.String(500))


class JobScheduleRecord(Base):
    """When each periodic sweep may next run, across every process (jobs/claims.py): the process
    that moves `next_run_at` forward runs the sweep; the others wait for the next interval."""

    __tablename__ = "job_schedule"

    job: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime)
