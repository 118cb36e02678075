"""Lesson packages and the family credit wallet (issue #28)

Revision ID: 0017_credit_packages
Revises: 0016_outbox_trace
Create Date: 2026-12-07

- credit_packages: what a teacher sells (lessons of one length, price, validity in days);
- credit_purchases: a parent's purchase of one, paid through its own Checkout Session on the
  platform (transfer_group per purchase, the charge id kept for the per-lesson transfers);
- credit_lots: the credits that came in together (a purchase paid, an operator's grant) and expire
  together; a draw locks its lot rows on PostgreSQL;
- credit_entries: the append-only ledger (purchase, draw, return, expire, refund, adjust); every
  balance is a sum of its entries. A booking draws and returns at most once
  (uq_credit_entries_booking_kind).
"""

import sqlalchemy as sa
from alembic import op

import tutorbook.db

revision = "0017_credit_packages"
down_revision = "0016_outbox_trace"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credit_packages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("lessons", sa.Integer(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("valid_days", sa.Integer(), nullable=False),
        sa.Column("created_at", tutorbook.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", tutorbook.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("lessons BETWEEN 1 AND 100", name=op.f("ck_credit_packages_lessons")),
        sa.CheckConstraint("price > 0", name=op.f("ck_credit_packages_price")),
        sa.CheckConstraint("valid_days BETWEEN 30 AND 730", name=op.f("ck_credit_packages_valid_days")),
        sa.ForeignKeyConstraint(
            ["teacher_id"], ["users.id"], name=op.f("fk_credit_packages_teacher_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_packages")),
    )
    op.create_index("ix_credit_packages_teacher", "credit_packages", ["teacher_id"], unique=False)
    op.create_table(
        "credit_purchases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=False),
        sa.Column("package_id", sa.Uuid(), nullable=False),
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("lessons", sa.Integer(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("valid_days", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("stripe_checkout_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.String(length=2048), nullable=True),
        sa.Column("checkout_expires_at", tutorbook.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stripe_payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_charge_id", sa.String(length=255), nullable=True),
        sa.Column("transfer_group", sa.String(length=64), nullable=False),
        sa.Column("paid_at", tutorbook.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refunded_amount", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", tutorbook.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tutorbook.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('open','paid','expired','withdrawn')", name=op.f("ck_credit_purchases_state")),
        sa.CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= price", name=op.f("ck_credit_purchases_refunded")
        ),
        sa.ForeignKeyConstraint(
            ["package_id"], ["credit_packages.id"], name=op.f("fk_credit_purchases_package_id_credit_packages")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["users.id"], name=op.f("fk_credit_purchases_parent_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["teacher_id"], ["users.id"], name=op.f("fk_credit_purchases_teacher_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_purchases")),
        sa.UniqueConstraint("stripe_checkout_id", name=op.f("uq_credit_purchases_stripe_checkout_id")),
    )
    op.create_index("ix_credit_purchases_parent", "credit_purchases", ["parent_id", "created_at"], unique=False)
    op.create_index(
        "ix_credit_purchases_state_expiry", "credit_purchases", ["state", "checkout_expires_at"], unique=False
    )
    op.create_table(
        "credit_lots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=False),
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("lessons", sa.Integer(), nullable=False),
        sa.Column("unit_amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("expires_at", tutorbook.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("purchase_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", tutorbook.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("warned_30_at", tutorbook.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("warned_7_at", tutorbook.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("lessons >= 0", name=op.f("ck_credit_lots_lessons")),
        sa.CheckConstraint("unit_amount >= 0", name=op.f("ck_credit_lots_unit_amount")),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["users.id"], name=op.f("fk_credit_lots_parent_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["credit_purchases.id"], name=op.f("fk_credit_lots_purchase_id_credit_purchases")
        ),
        sa.ForeignKeyConstraint(["teacher_id"], ["users.id"], name=op.f("fk_credit_lots_teacher_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_lots")),
        sa.UniqueConstraint("purchase_id", name=op.f("uq_credit_lots_purchase_id")),
    )
    op.create_index("ix_credit_lots_expires", "credit_lots", ["expires_at"], unique=False)
    op.create_index(
        "ix_credit_lots_wallet",
        "credit_lots",
        ["parent_id", "teacher_id", "duration_minutes", "expires_at"],
        unique=False,
    )
    op.create_table(
        "credit_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=False),
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("lessons", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), server_default="0", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("purchase_id", sa.Uuid(), nullable=True),
        sa.Column("booking_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("stripe_refund_id", sa.String(length=255), nullable=True),
        sa.Column("refund_status", sa.String(length=20), nullable=True),
        sa.Column("created_at", tutorbook.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('purchase','draw','return','expire','refund','adjust')", name=op.f("ck_credit_entries_kind")
        ),
        sa.CheckConstraint("lessons <> 0", name=op.f("ck_credit_entries_lessons")),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["private_sessions.id"],
            name=op.f("fk_credit_entries_booking_id_private_sessions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["credit_lots.id"], name=op.f("fk_credit_entries_lot_id_credit_lots"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["users.id"], name=op.f("fk_credit_entries_parent_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["credit_purchases.id"], name=op.f("fk_credit_entries_purchase_id_credit_purchases")
        ),
        sa.ForeignKeyConstraint(["teacher_id"], ["users.id"], name=op.f("fk_credit_entries_teacher_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_entries")),
    )
    op.create_index("ix_credit_entries_lot", "credit_entries", ["lot_id"], unique=False)
    op.create_index(
        "ix_credit_entries_parent_id", "credit_entries", ["parent_id", sa.literal_column("id DESC")], unique=False
    )
    op.create_index("ix_credit_entries_purchase", "credit_entries", ["purchase_id"], unique=False)
    op.create_index(
        "uq_credit_entries_booking_kind",
        "credit_entries",
        ["booking_id", "kind"],
        unique=True,
        postgresql_where=sa.text("booking_id IS NOT NULL AND kind IN ('draw', 'return')"),
        sqlite_where=sa.text("booking_id IS NOT NULL AND kind IN ('draw', 'return')"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_credit_entries_booking_kind",
        table_name="credit_entries",
        postgresql_where=sa.text("booking_id IS NOT NULL AND kind IN ('draw', 'return')"),
        sqlite_where=sa.text("booking_id IS NOT NULL AND kind IN ('draw', 'return')"),
    )
    op.drop_index("ix_credit_entries_purchase", table_name="credit_entries")
    op.drop_index("ix_credit_entries_parent_id", table_name="credit_entries")
    op.drop_index("ix_credit_entries_lot", table_name="credit_entries")
    op.drop_table("credit_entries")
    op.drop_index("ix_credit_lots_wallet", table_name="credit_lots")
    op.drop_index("ix_credit_lots_expires", table_name="credit_lots")
    op.drop_table("credit_lots")
    op.drop_index("ix_credit_purchases_state_expiry", table_name="credit_purchases")
    op.drop_index("ix_credit_purchases_parent", table_name="credit_purchases")
    op.drop_table("credit_purchases")
    op.drop_index("ix_credit_packages_teacher", table_name="credit_packages")
    op.drop_table("credit_packages")
