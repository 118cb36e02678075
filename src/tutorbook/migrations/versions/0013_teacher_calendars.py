"""Teachers' own calendars: connected iCal addresses and their busy periods

Revision ID: 0013_teacher_calendars
Revises: 0012_user_locale
Create Date: 2026-12-07

- teacher_calendars: one per calendar a teacher connected (kind `ics`: the secret address, its
  masked form, the conditional GET's validators; kind `google`: a Google calendar's id), and the
  last sync's outcome;
- calendar_busy_periods: the busy occurrences last read from each, replaced on every sync; read
  per teacher by start (availability, booking), so one index (teacher_id, starts_at).
"""

import sqlalchemy as sa
from alembic import op

import tutorbook.db

revision = "0013_teacher_calendars"
down_revision = "0012_user_locale"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "teacher_calendars",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("masked_url", sa.String(length=300), nullable=False),
        sa.Column("etag", sa.String(length=300), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column("last_attempt_at", tutorbook.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_synced_at", tutorbook.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('ics', 'google')", name=op.f("ck_teacher_calendars_kind")),
        sa.ForeignKeyConstraint(
            ["teacher_id"],
            ["teacher_profiles.user_id"],
            name=op.f("fk_teacher_calendars_teacher_id_teacher_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teacher_calendars")),
    )
    op.create_index(op.f("ix_teacher_calendars_teacher_id"), "teacher_calendars", ["teacher_id"])
    op.create_table(
        "calendar_busy_periods",
        sa.Column("id", BIGINT, autoincrement=True, nullable=False),
        sa.Column("calendar_id", sa.Uuid(), nullable=False),
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_calendar_busy_periods_time_order")),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["teacher_calendars.id"],
            name=op.f("fk_calendar_busy_periods_calendar_id_teacher_calendars"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["teacher_id"],
            ["teacher_profiles.user_id"],
            name=op.f("fk_calendar_busy_periods_teacher_id_teacher_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_busy_periods")),
    )
    op.create_index(op.f("ix_calendar_busy_periods_calendar_id"), "calendar_busy_periods", ["calendar_id"])
    op.create_index("ix_calendar_busy_periods_teacher_starts", "calendar_busy_periods", ["teacher_id", "starts_at"])


def downgrade() -> None:
    op.drop_index("ix_calendar_busy_periods_teacher_starts", table_name="calendar_busy_periods")
    op.drop_index(op.f("ix_calendar_busy_periods_calendar_id"), table_name="calendar_busy_periods")
    op.drop_table("calendar_busy_periods")
    op.drop_index(op.f("ix_teacher_calendars_teacher_id"), table_name="teacher_calendars")
    op.drop_table("teacher_calendars")
