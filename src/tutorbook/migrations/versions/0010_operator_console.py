"""The operator console: disabled accounts, unlisted teachers, an admin's reasons and actions,
job runs, and the indexes of the console's booking search

Revision ID: 0010_operator_console
Revises: 0007_teacher_self_service
Create Date: 2026-11-29

- users.disabled_at: a disabled user cannot log in and their tokens stop working;
- teacher_profiles.listed: off the list and not bookable when false;
- session_status_history.note: why, in the admin's words (a cancellation's required reason);
- admin_actions: what an admin did to a booking besides moving its status;
- job_runs: each job run (kept a week), so every process sees the last runs and findings;
- private_sessions: (starts_at DESC, id), (status, starts_at DESC, id) and
  (student_id, starts_at DESC, id) give /admin/bookings its keyset pages in order, filtered by
  status or child or not at all (the parent and teacher filters use the existing indexes);
  stripe_payment_intent_id is searched by.

On a large live table, build the indexes by hand first with CREATE INDEX CONCURRENTLY under the
same names; Alembic runs migrations in a transaction, where CONCURRENTLY is not allowed.
"""

import sqlalchemy as sa
from alembic import op

from tutorbook.db import UTCDateTime

revision = "0010_operator_console"
down_revision = "0007_teacher_self_service"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")
INDEXES: list[tuple[str, list[str | sa.TextClause]]] = [
    ("ix_private_sessions_starts_id", [sa.text("starts_at DESC"), "id"]),
    ("ix_private_sessions_status_starts_id", ["status", sa.text("starts_at DESC"), "id"]),
    ("ix_private_sessions_student_starts_id", ["student_id", sa.text("starts_at DESC"), "id"]),
    ("ix_private_sessions_payment_intent", ["stripe_payment_intent_id"]),
]


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("teacher_profiles") as batch:
        batch.add_column(sa.Column("listed", sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table("session_status_history") as batch:
        batch.add_column(sa.Column("note", sa.String(500), nullable=True))
    op.create_table(
        "admin_actions",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column(
            "session_id",
            sa.Uuid(),
            sa.ForeignKey("private_sessions.id", ondelete="CASCADE", name="fk_admin_actions_session_id_private_sessions"),
            nullable=False,
        ),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_admin_actions_session_id", "admin_actions", ["session_id"])
    op.create_table(
        "job_runs",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(40), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(500), nullable=True),
    )
    op.create_index("ix_job_runs_job_finished", "job_runs", ["job", "finished_at"])
    for name, columns in INDEXES:
        op.create_index(name, "private_sessions", columns, if_not_exists=True)


def downgrade() -> None:
    for name, _ in INDEXES:
        op.drop_index(name, table_name="private_sessions")
    op.drop_index("ix_job_runs_job_finished", table_name="job_runs")
    op.drop_table("job_runs")
    op.drop_index("ix_admin_actions_session_id", table_name="admin_actions")
    op.drop_table("admin_actions")
    with op.batch_alter_table("session_status_history") as batch:
        batch.drop_column("note")
    with op.batch_alter_table("teacher_profiles") as batch:
        batch.drop_column("listed")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled_at")
