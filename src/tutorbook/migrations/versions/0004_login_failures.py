"""Failed logins in the database, shared by every replica

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

The login throttle kept its counts in process memory: each replica throttled on its own, and a
restart forgot everything. One row per throttle key (an HMAC of the account, the address, or
both) with its count and the time of the last failure; the purge job deletes old rows.
"""

import sqlalchemy as sa
from alembic import op

import tutorbook.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_failures")),
    )
    op.create_index(op.f("ix_login_failures_last_failed_at"), "login_failures", ["last_failed_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_login_failures_last_failed_at"), table_name="login_failures")
    op.drop_table("login_failures")
