"""The expire job walks Pending bookings in id order

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

The expire job selects stale Pending bookings in batches, `WHERE status = 0 AND id > :after
... ORDER BY id LIMIT n`. With (status, checkout_expires_at) every batch read and sorted all
the remaining stale rows (quadratic in a backlog of 100,000); (status, id) is read in order and
stops after n. Pending bookings are few in steady state, so the filter on checkout_expires_at
costs little. A full index, not a partial one (WHERE status = 0): prepared statements with
generic plans, as psycopg makes after a few executions, cannot use a partial index.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_private_sessions_status_id", "private_sessions", ["status", "id"], if_not_exists=True)
    op.drop_index("ix_private_sessions_status_expiry", table_name="private_sessions")


def downgrade() -> None:
    op.create_index("ix_private_sessions_status_expiry", "private_sessions", ["status", "checkout_expires_at"])
    op.drop_index("ix_private_sessions_status_id", table_name="private_sessions")
