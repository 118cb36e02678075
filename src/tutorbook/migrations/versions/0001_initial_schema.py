"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28

On PostgreSQL an exclusion constraint makes overlapping Pending/Confirmed bookings of one
teacher impossible, whatever the application does.
"""

import sqlalchemy as sa
from alembic import op

import tutorbook.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("received_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("created_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('Parent','Teacher','Admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "students",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("grade_level", sa.String(length=50), nullable=True),
        sa.Column("notes", sa.String(length=1000), nullable=True),
        sa.Column("created_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["users.id"],
            name=op.f("fk_students_parent_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_students")),
    )
    with op.batch_alter_table("students", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_students_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "teacher_profiles",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("subjects", sa.JSON(), nullable=False),
        sa.Column("hourly_rate", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("bio", sa.String(length=2000), nullable=False),
        sa.CheckConstraint("hourly_rate >= 0", name=op.f("ck_teacher_profiles_rate_not_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_teacher_profiles_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_teacher_profiles")),
    )
    op.create_table(
        "availability_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("start_minute", sa.Integer(), nullable=False),
        sa.Column("end_minute", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute",
            name=op.f("ck_availability_windows_span"),
        ),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name=op.f("ck_availability_windows_weekday")),
        sa.ForeignKeyConstraint(
            ["teacher_id"],
            ["teacher_profiles.user_id"],
            name=op.f("fk_availability_windows_teacher_id_teacher_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_availability_windows")),
    )
    with op.batch_alter_table("availability_windows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_availability_windows_teacher_id"), ["teacher_id"], unique=False)

    op.create_table(
        "private_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=False),
        sa.Column("student_id", sa.Uuid(), nullable=False),
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("starts_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("price_amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("stripe_session_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.String(length=2048), nullable=True),
        sa.Column("checkout_expires_at", tutorbook.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_at", tutorbook.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", tutorbook.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancellation_reason", sa.String(length=32), nullable=True),
        sa.Column("refunded_amount", sa.Integer(), server_default="0", nullable=False),
        sa.Column("meeting_url", sa.String(length=2048), nullable=True),
        sa.Column("meeting_provider", sa.String(length=32), nullable=True),
        sa.Column("meeting_external_id", sa.String(length=255), nullable=True),
        sa.Column("meeting_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("meeting_next_attempt_at", tutorbook.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("meeting_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "cancellation_reason IS NULL OR cancellation_reason IN ('admin_cancelled','checkout_expired','checkout_failed','parent_cancelled','payment_cancelled','payment_failed','teacher_cancelled')",
            name=op.f("ck_private_sessions_cancellation_reason"),
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_private_sessions_time_order")),
        sa.CheckConstraint("price_amount >= 0", name=op.f("ck_private_sessions_price")),
        sa.CheckConstraint("status IN (0,1,2,3)", name=op.f("ck_private_sessions_status")),
        sa.ForeignKeyConstraint(["parent_id"], ["users.id"], name=op.f("fk_private_sessions_parent_id_users")),
        sa.ForeignKeyConstraint(["student_id"], ["students.id"], name=op.f("fk_private_sessions_student_id_students")),
        sa.ForeignKeyConstraint(["teacher_id"], ["users.id"], name=op.f("fk_private_sessions_teacher_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_private_sessions")),
        sa.UniqueConstraint("stripe_session_id", name=op.f("uq_private_sessions_stripe_session_id")),
    )
    with op.batch_alter_table("private_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_private_sessions_parent_starts", ["parent_id", "starts_at"], unique=False)
        batch_op.create_index("ix_private_sessions_status_ends", ["status", "ends_at"], unique=False)
        batch_op.create_index("ix_private_sessions_status_expiry", ["status", "checkout_expires_at"], unique=False)
        batch_op.create_index("ix_private_sessions_teacher_starts", ["teacher_id", "starts_at"], unique=False)

    op.create_table(
        "refunds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("stripe_refund_id", sa.String(length=255), nullable=True),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("created_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["private_sessions.id"],
            name=op.f("fk_refunds_session_id_private_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("stripe_refund_id", name=op.f("uq_refunds_stripe_refund_id")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refunds_session_id"), ["session_id"], unique=False)

    op.create_table(
        "session_status_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("from_status", sa.SmallInteger(), nullable=True),
        sa.Column("to_status", sa.SmallInteger(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("created_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["private_sessions.id"],
            name=op.f("fk_session_status_history_session_id_private_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_status_history")),
    )
    with op.batch_alter_table("session_status_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_status_history_session_id"), ["session_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE private_sessions ADD CONSTRAINT ex_private_sessions_teacher_overlap "
            "EXCLUDE USING gist (teacher_id WITH =, tstzrange(starts_at, ends_at) WITH &&) "
            "WHERE (status IN (0, 1))"
        )


def downgrade() -> None:
    with op.batch_alter_table("session_status_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_status_history_session_id"))

    op.drop_table("session_status_history")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refunds_session_id"))

    op.drop_table("refunds")
    with op.batch_alter_table("private_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_private_sessions_teacher_starts")
        batch_op.drop_index("ix_private_sessions_status_expiry")
        batch_op.drop_index("ix_private_sessions_status_ends")
        batch_op.drop_index("ix_private_sessions_parent_starts")

    op.drop_table("private_sessions")
    with op.batch_alter_table("availability_windows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_availability_windows_teacher_id"))

    op.drop_table("availability_windows")
    op.drop_table("teacher_profiles")
    with op.batch_alter_table("students", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_students_parent_id"))

    op.drop_table("students")
    op.drop_table("users")
    op.drop_table("stripe_events")
