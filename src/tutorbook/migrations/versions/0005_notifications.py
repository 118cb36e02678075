"""Notifications: the mail outbox, the development mailbox, password resets, and the user's
token version, calendar feed secret, reminder opt-out and undeliverable mark

Revision ID: 0005_notifications
Revises: 0003
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

from tutorbook.db import UTCDateTime

revision = "0005_notifications"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("token_version", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("calendar_token_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("reminders_opt_out", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("mail_undeliverable_at", UTCDateTime(), nullable=True))
        batch.create_unique_constraint("uq_users_calendar_token_hash", ["calendar_token_hash"])

    op.create_table(
        "password_resets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_password_resets_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_password_resets"),
        sa.UniqueConstraint("token_hash", name="uq_password_resets_token_hash"),
    )
    op.create_index("ix_password_resets_user_id", "password_resets", ["user_id"])

    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("booking_id", sa.Uuid(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("to_address", sa.String(254), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("claim", sa.String(36), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('pending','sending','sent','failed','skipped')", name="ck_notifications_status"),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["private_sessions.id"],
            name="fk_notifications_booking_id_private_sessions",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_notifications_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint("booking_id", "kind", "version", name="uq_notifications_once"),
    )
    op.create_index("ix_notifications_booking_id", "notifications", ["booking_id"])
    op.create_index("ix_notifications_user_id", "notifications", ["user_id"])
    op.create_index("ix_notifications_status_due", "notifications", ["status", "next_attempt_at"])

    op.create_table(
        "dev_mail",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=True),
        sa.Column("to_address", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name="fk_dev_mail_notification_id_notifications",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dev_mail"),
        sa.UniqueConstraint("notification_id", name="uq_dev_mail_notification_id"),
    )


def downgrade() -> None:
    op.drop_table("dev_mail")
    op.drop_index("ix_notifications_status_due", table_name="notifications")
    op.drop_index("ix_notifications_user_id", table_name="notifications")
    op.drop_index("ix_notifications_booking_id", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_password_resets_user_id", table_name="password_resets")
    op.drop_table("password_resets")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_calendar_token_hash", type_="unique")
        batch.drop_column("mail_undeliverable_at")
        batch.drop_column("reminders_opt_out")
        batch.drop_column("calendar_token_hash")
        batch.drop_column("token_version")
