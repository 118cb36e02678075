"""Stripe Connect: teachers' connected accounts, and the destination charge of each booking

Revision ID: 0008_connect
Revises: 0006_refund_payment_intent
Create Date: 2026-11-29

`teacher_payout_accounts` holds each teacher's Express account and its state as Stripe last
reported it. A booking keeps the account its checkout pays (`payout_destination`) and the
platform fee fixed at booking time; once paid, the charge, its transfer and application fee,
and the totals Stripe reports for them (transferred, reversed, fee refunded). Existing rows
are payments that stayed on the platform: null ids, 0 amounts.
"""

import sqlalchemy as sa
from alembic import op

import tutorbook.db

# The file name gives this migration's place in the chain (0007); its revision id stays
# "0008_connect", which databases already upgraded have recorded (issue #27).
revision = "0008_connect"
down_revision = "0006_refund_payment_intent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "teacher_payout_accounts",
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("stripe_account_id", sa.String(length=255), nullable=False),
        sa.Column("charges_enabled", sa.Boolean(), nullable=False),
        sa.Column("payouts_enabled", sa.Boolean(), nullable=False),
        sa.Column("details_submitted", sa.Boolean(), nullable=False),
        sa.Column("currently_due", sa.JSON(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=100), nullable=True),
        sa.Column("state_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tutorbook.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["teacher_id"], ["users.id"], name=op.f("fk_teacher_payout_accounts_teacher_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("teacher_id", name=op.f("pk_teacher_payout_accounts")),
        sa.UniqueConstraint("stripe_account_id", name=op.f("uq_teacher_payout_accounts_stripe_account_id")),
    )
    with op.batch_alter_table("private_sessions") as batch:
        batch.add_column(sa.Column("payout_destination", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("platform_fee_amount", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("stripe_charge_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("stripe_transfer_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("stripe_application_fee_id", sa.String(length=255), nullable=True))
        for name in ("transfer_amount", "transfer_reversed_amount", "fee_refunded_amount"):
            batch.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))
    op.create_index(op.f("ix_private_sessions_stripe_charge_id"), "private_sessions", ["stripe_charge_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_private_sessions_stripe_charge_id"), table_name="private_sessions")
    with op.batch_alter_table("private_sessions") as batch:
        for name in (
            "fee_refunded_amount",
            "transfer_reversed_amount",
            "transfer_amount",
            "stripe_application_fee_id",
            "stripe_transfer_id",
            "stripe_charge_id",
            "platform_fee_amount",
            "payout_destination",
        ):
            batch.drop_column(name)
    op.drop_table("teacher_payout_accounts")
