"""Teachers set themselves up: time off

Revision ID: 0007_teacher_self_service
Revises: 0009_reschedule_policy
Create Date: 2026-12-01

A teacher's time off (holidays, sick days) as UTC ranges, taken out of their free time and
refused by booking. Looked up per teacher by start, so one index (teacher_id, starts_at).
"""

import sqlalchemy as sa
from alembic import op

import tutorbook.db

# The file name gives this migration's place in the chain (0009); its revision id stays
# "0007_teacher_self_service", which databases already upgraded have recorded (issue #27).
revision = "0007_teacher_self_service"
down_revision = "0009_reschedule_policy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "time_off",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_time_off_time_order")),
        sa.ForeignKeyConstraint(
            ["teacher_id"],
            ["teacher_profiles.user_id"],
            name=op.f("fk_time_off_teacher_id_teacher_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_time_off")),
    )
    op.create_index("ix_time_off_teacher_starts", "time_off", ["teacher_id", "starts_at"])


def downgrade() -> None:
    op.drop_index("ix_time_off_teacher_starts", table_name="time_off")
    op.drop_table("time_off")
