"""My Bookings reads one index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

My Bookings counts a parent's visible bookings and reads the newest page of them. The index
(parent_id, starts_at DESC, id) gives the page in order, with no sort, and on PostgreSQL it
carries status and paid_at (INCLUDE), so the count is an index-only scan instead of one heap
page per booking (docs/PERFORMANCE.md, section 4). It replaces (parent_id, starts_at).

On a large live table, build it by hand first with CREATE INDEX CONCURRENTLY under the same
name; Alembic runs migrations in a transaction, where CONCURRENTLY is not allowed.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_private_sessions_my_bookings",
        "private_sessions",
        ["parent_id", sa.text("starts_at DESC"), "id"],
        postgresql_include=["status", "paid_at"],
        if_not_exists=True,
    )
    op.drop_index("ix_private_sessions_parent_starts", table_name="private_sessions")


def downgrade() -> None:
    op.create_index("ix_private_sessions_parent_starts", "private_sessions", ["parent_id", "starts_at"])
    op.drop_index("ix_private_sessions_my_bookings", table_name="private_sessions")
