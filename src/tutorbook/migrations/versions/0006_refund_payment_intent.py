"""Refunds name the payment they return money from

Revision ID: 0006_refund_payment_intent
Revises: 0005_notifications
Create Date: 2026-11-29

A refund usually returns part of the booking's own payment, but a refused payment (another
amount, currency or checkout than the booking's) is another payment of the same booking. Its
payment intent was kept in `stripe_refund_id` as `payment:<pi>` until Stripe answered; it now has
a column of its own, and `stripe_refund_id` holds only Stripe's refund id.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_refund_payment_intent"
down_revision = "0005_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refunds", sa.Column("payment_intent_id", sa.String(255), nullable=True))
    refunds = sa.table(
        "refunds", sa.column("stripe_refund_id", sa.String), sa.column("payment_intent_id", sa.String)
    )
    held = refunds.c.stripe_refund_id.like("payment:%")
    op.execute(
        refunds.update()
        .where(held)
        .values(payment_intent_id=sa.func.substr(refunds.c.stripe_refund_id, 9), stripe_refund_id=None)
    )


def downgrade() -> None:
    op.drop_column("refunds", "payment_intent_id")
