"""The trace a mail outbox row was written in

Revision ID: 0016_outbox_trace
Revises: 0015_payment_records
Create Date: 2026-12-07

- notifications.trace_parent: the W3C traceparent current when the row was written (NULL with
  tracing off), so that the mail worker's spans continue the booking's trace (issue #31).
  (On the main line this follows 0015_payment_records: renumbered at merge.)
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_outbox_trace"
down_revision = "0015_payment_records"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("trace_parent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("trace_parent")
