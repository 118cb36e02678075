"""Weekly lessons: a series of real bookings

Revision ID: 0018_weekly_series
Revises: 0017_credit_packages
Create Date: 2026-12-07

- series: who, what, which weekly time (the first start, the weeks, the zone whose wall clock the
  weeks keep), how it is paid (card: the parent's Stripe Customer; credit),.
- series_occurrences: one row per booking a series made: its week, its start before any move, and
  for a card series' later weeks the off-session charge (due, attempted, why it failed, the
  deadline of the link to pay it).
- payments.kind admits 'off_session' (a later week paid with the saved card).
(Issue #29.)
"""

import sqlalchemy as sa
from alembic import op

from tutorbook.db import UTCDateTime

revision = "0018_weekly_series"
down_revision = "0017_credit_packages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "series",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=False),
        sa.Column("student_id", sa.Uuid(), nullable=False),
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("first_starts_at", UTCDateTime(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("weeks", sa.Integer(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("pay_with", sa.String(length=10), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("pay_with IN ('card','credit')", name=op.f("ck_series_pay_with")),
        sa.CheckConstraint("weeks BETWEEN 2 AND 52", name=op.f("ck_series_weeks")),
        sa.ForeignKeyConstraint(["parent_id"], ["users.id"], name=op.f("fk_series_parent_id_users")),
        sa.ForeignKeyConstraint(["student_id"], ["students.id"], name=op.f("fk_series_student_id_students")),
        sa.ForeignKeyConstraint(["teacher_id"], ["users.id"], name=op.f("fk_series_teacher_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
    )
    op.create_index("ix_series_parent_id", "series", ["parent_id"])
    op.create_index("ix_series_teacher_id", "series", ["teacher_id"])
    op.create_table(
        "series_occurrences",
        sa.Column("booking_id", sa.Uuid(), nullable=False),
        sa.Column("series_id", sa.Uuid(), nullable=False),
        sa.Column("week", sa.Integer(), nullable=False),
        sa.Column("original_starts_at", UTCDateTime(), nullable=False),
        sa.Column("charge_due_at", UTCDateTime(), nullable=True),
        sa.Column("charge_attempted_at", UTCDateTime(), nullable=True),
        sa.Column("charge_failure", sa.String(length=40), nullable=True),
        sa.Column("pay_deadline_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["private_sessions.id"],
            name=op.f("fk_series_occurrences_booking_id_private_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["series_id"], ["series.id"], name=op.f("fk_series_occurrences_series_id_series"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("booking_id", name=op.f("pk_series_occurrences")),
        sa.UniqueConstraint("series_id", "week", name=op.f("uq_series_occurrences_series_week")),
    )
    op.create_index("ix_series_occurrences_charge_due", "series_occurrences", ["charge_due_at"])
    op.create_index(op.f("ix_series_occurrences_series_id"), "series_occurrences", ["series_id"])
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint(op.f("ck_payments_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_payments_kind"), "kind IN ('checkout','credit','off_session')")


def downgrade() -> None:
    op.execute("UPDATE payments SET kind = 'checkout' WHERE kind = 'off_session'")
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint(op.f("ck_payments_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_payments_kind"), "kind IN ('checkout','credit')")
    op.drop_index(op.f("ix_series_occurrences_series_id"), table_name="series_occurrences")
    op.drop_index("ix_series_occurrences_charge_due", table_name="series_occurrences")
    op.drop_table("series_occurrences")
    op.drop_index("ix_series_teacher_id", table_name="series")
    op.drop_index("ix_series_parent_id", table_name="series")
    op.drop_table("series")
