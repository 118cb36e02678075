"""Rescheduling and each teacher's terms: the teacher's own terms (NULL: the platform's), the
terms in force stored on a booking when it is paid, the parent's reschedule count, and the
start before and after each move in the history

Revision ID: 0009_reschedule_policy
Revises: 0008_connect
Create Date: 2026-12-12
"""

import sqlalchemy as sa
from alembic import op

from tutorbook.db import UTCDateTime

# The file name gives this migration's place in the chain (0008); its revision id stays
# "0009_reschedule_policy", which databases already upgraded have recorded (issue #27).
revision = "0009_reschedule_policy"
down_revision = "0008_connect"
branch_labels = None
depends_on = None

TERMS = ("full_refund_hours", "late_refund_percent", "reschedule_deadline_hours", "max_reschedules")
TEACHER_CHECK = (
    "(full_refund_hours IS NULL OR full_refund_hours >= 0)"
    " AND (late_refund_percent IS NULL OR late_refund_percent BETWEEN 0 AND 100)"
    " AND (reschedule_deadline_hours IS NULL OR reschedule_deadline_hours >= 0)"
    " AND (max_reschedules IS NULL OR max_reschedules >= 0)"
)


def upgrade() -> None:
    with op.batch_alter_table("teacher_profiles") as batch:
        for name in TERMS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))
        batch.create_check_constraint(op.f("ck_teacher_profiles_terms"), TEACHER_CHECK)
    with op.batch_alter_table("private_sessions") as batch:
        for name in TERMS:
            batch.add_column(sa.Column(f"terms_{name}", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reschedule_count", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("session_status_history") as batch:
        batch.add_column(sa.Column("moved_from", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("moved_to", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("session_status_history") as batch:
        batch.drop_column("moved_to")
        batch.drop_column("moved_from")
    with op.batch_alter_table("private_sessions") as batch:
        batch.drop_column("reschedule_count")
        for name in reversed(TERMS):
            batch.drop_column(f"terms_{name}")
    with op.batch_alter_table("teacher_profiles") as batch:
        batch.drop_constraint(op.f("ck_teacher_profiles_terms"), type_="check")
        for name in reversed(TERMS):
            batch.drop_column(name)
