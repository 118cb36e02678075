"""The cluster-wide claim of each periodic sweep

Revision ID: 0014_job_schedule
Revises: 0013_teacher_calendars
Create Date: 2026-12-07

- job_schedule: one row per sweep, its next_run_at moved forward by the one process that runs it
  (tutorbook.jobs.claims), so N replicas sweep once per interval, not N times.
"""

import sqlalchemy as sa
from alembic import op

import tutorbook.db

revision = "0014_job_schedule"
down_revision = "0013_teacher_calendars"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_schedule",
        sa.Column("job", sa.String(length=40), nullable=False),
        sa.Column("next_run_at", tutorbook.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_job_schedule")),
    )


def downgrade() -> None:
    op.drop_table("job_schedule")
