"""A booking's payments, meeting link and terms as records of their own (issue #27)

Revision ID: 0015_payment_records
Revises: 0014_job_schedule
Create Date: 2026-12-07

- payments: one row per attempt to pay a booking (kind, its own state, amount, currency, the
  Stripe ids, the checkout, paid_at, refunded_amount, the Connect split). Each booking that has a
  checkout, a payment or a checkout being made gets its payment, with the id of the booking (so
  the refunds find it) and the state its columns imply: refunded (paid, refunds reaching the
  price), paid (paid, or a late payment refunded only in part so far), open (Pending), expired
  (cancelled checkout_expired) or withdrawn (any other unpaid cancellation). A refund of another
  payment that named the booking (a refused payment, 0006's payment_intent_id) gets a refused
  payment of its own.
- refunds.payment_id: the payment each refund returns money from.
- meeting_links: the booking's link and its retries, where it has any of them.
- booking_terms: the terms in force when it was paid, where stored.
- private_sessions loses the moved columns; paid_at stays (the booking's own "paid", which My
  Bookings reads from its covering index). The payment intent and charge lookups move to
  indexes on payments.

The downgrade puts the columns back from the booking's own payment (not a refused one), its link
and its terms, and drops the new tables. On SQLite the table rebuilds run with foreign keys off
(migrations/env.py), so rebuilding private_sessions cascades to nothing.
"""

import uuid
from typing import Any

import sqlalchemy as sa
from alembic import op

import tutorbook.db

revision = "0015_payment_records"
down_revision = "0014_job_schedule"
branch_labels = None
depends_on = None

UTC = tutorbook.db.UTCDateTime(timezone=True)
STATES = "'open','paid','refunded','expired','withdrawn','refused'"
# The booking's columns that move to its payment: (booking column, payment column).
PAYMENT_COLUMNS = [
    ("stripe_session_id", "stripe_checkout_id"),
    ("stripe_payment_intent_id", "stripe_payment_intent_id"),
    ("checkout_url", "checkout_url"),
    ("checkout_expires_at", "checkout_expires_at"),
    ("refunded_amount", "refunded_amount"),
    ("payout_destination", "payout_destination"),
    ("platform_fee_amount", "platform_fee_amount"),
    ("stripe_charge_id", "stripe_charge_id"),
    ("stripe_transfer_id", "stripe_transfer_id"),
    ("stripe_application_fee_id", "stripe_application_fee_id"),
    ("transfer_amount", "transfer_amount"),
    ("transfer_reversed_amount", "transfer_reversed_amount"),
    ("fee_refunded_amount", "fee_refunded_amount"),
]
MEETING_COLUMNS = [
    ("meeting_url", "url"),
    ("meeting_provider", "provider"),
    ("meeting_external_id", "external_id"),
    ("meeting_attempts", "attempts"),
    ("meeting_next_attempt_at", "next_attempt_at"),
    ("meeting_error", "error"),
]
TERMS = ["full_refund_hours", "late_refund_percent", "reschedule_deadline_hours", "max_reschedules"]
# The booking's old columns, to put back: name -> (type, server default).
OLD_COLUMNS: dict[str, tuple[sa.types.TypeEngine[Any], str | None]] = {
    "stripe_session_id": (sa.String(255), None),
    "stripe_payment_intent_id": (sa.String(255), None),
    "checkout_url": (sa.String(2048), None),
    "checkout_expires_at": (UTC, None),
    "refunded_amount": (sa.Integer(), "0"),
    "meeting_url": (sa.String(2048), None),
    "meeting_provider": (sa.String(32), None),
    "meeting_external_id": (sa.String(255), None),
    "meeting_attempts": (sa.Integer(), "0"),
    "meeting_next_attempt_at": (UTC, None),
    "meeting_error": (sa.String(500), None),
    "payout_destination": (sa.String(255), None),
    "platform_fee_amount": (sa.Integer(), None),
    "stripe_charge_id": (sa.String(255), None),
    "stripe_transfer_id": (sa.String(255), None),
    "stripe_application_fee_id": (sa.String(255), None),
    "transfer_amount": (sa.Integer(), "0"),
    "transfer_reversed_amount": (sa.Integer(), "0"),
    "fee_refunded_amount": (sa.Integer(), "0"),
    **{f"terms_{name}": (sa.Integer(), None) for name in TERMS},
}
# A booking has a payment once a checkout was being made for it, or it was paid.
HAS_PAYMENT = (
    "b.stripe_session_id IS NOT NULL OR b.checkout_expires_at IS NOT NULL OR b.paid_at IS NOT NULL"
    " OR b.stripe_payment_intent_id IS NOT NULL OR b.payout_destination IS NOT NULL"
)
# The state a booking's columns imply for its payment. A payment intent without paid_at is a late
# payment refunded (the booking stayed Cancelled): the money came in.
STATE_OF = """CASE
    WHEN (b.paid_at IS NOT NULL OR b.stripe_payment_intent_id IS NOT NULL)
         AND b.price_amount > 0 AND b.refunded_amount >= b.price_amount THEN 'refunded'
    WHEN b.paid_at IS NOT NULL OR b.stripe_payment_intent_id IS NOT NULL THEN 'paid'
    WHEN b.status = 0 THEN 'open'
    WHEN b.cancellation_reason = 'checkout_expired' THEN 'expired'
    ELSE 'withdrawn'
END"""
# When a late payment that was refunded came in: its history entry.
LATE_PAID_AT = (
    "(SELECT MIN(h.created_at) FROM session_status_history h WHERE h.session_id = b.id"
    " AND h.reason = 'late_payment_refunded')"
)


def upgrade() -> None:
    _create_tables()
    _move_rows()
    _drop_old_columns()


def _create_tables() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("booking_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), server_default="open", nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("stripe_checkout_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.String(length=2048), nullable=True),
        sa.Column("checkout_expires_at", UTC, nullable=True),
        sa.Column("paid_at", UTC, nullable=True),
        sa.Column("refunded_amount", sa.Integer(), server_default="0", nullable=False),
        sa.Column("payout_destination", sa.String(length=255), nullable=True),
        sa.Column("platform_fee_amount", sa.Integer(), nullable=True),
        sa.Column("stripe_charge_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_transfer_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_application_fee_id", sa.String(length=255), nullable=True),
        sa.Column("transfer_amount", sa.Integer(), server_default="0", nullable=False),
        sa.Column("transfer_reversed_amount", sa.Integer(), server_default="0", nullable=False),
        sa.Column("fee_refunded_amount", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.CheckConstraint("kind IN ('checkout','credit')", name=op.f("ck_payments_kind")),
        sa.CheckConstraint(f"state IN ({STATES})", name=op.f("ck_payments_state")),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_payments_amount")),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["private_sessions.id"],
            name=op.f("fk_payments_booking_id_private_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("stripe_checkout_id", name=op.f("uq_payments_stripe_checkout_id")),
    )
    op.create_index(
        "uq_payments_booking_own",
        "payments",
        ["booking_id"],
        unique=True,
        postgresql_where=sa.text("state <> 'refused'"),
        sqlite_where=sa.text("state <> 'refused'"),
    )
    op.create_index("ix_payments_booking_id", "payments", ["booking_id"])
    op.create_index("ix_payments_payment_intent", "payments", ["stripe_payment_intent_id"])
    op.create_index("ix_payments_charge", "payments", ["stripe_charge_id"])
    op.create_table(
        "meeting_links",
        sa.Column("booking_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["private_sessions.id"],
            name=op.f("fk_meeting_links_booking_id_private_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("booking_id", name=op.f("pk_meeting_links")),
    )
    op.create_table(
        "booking_terms",
        sa.Column("booking_id", sa.Uuid(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in TERMS),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["private_sessions.id"],
            name=op.f("fk_booking_terms_booking_id_private_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("booking_id", name=op.f("pk_booking_terms")),
    )


def _move_rows() -> None:
    moved = ", ".join(f"b.{old}" for old, _ in PAYMENT_COLUMNS)
    into = ", ".join(new for _, new in PAYMENT_COLUMNS)
    op.execute(
        f"INSERT INTO payments (id, booking_id, kind, state, amount, currency, paid_at, created_at, updated_at, {into})"
        f" SELECT b.id, b.id, 'checkout', {STATE_OF}, b.price_amount, b.currency,"
        f" COALESCE(b.paid_at, {LATE_PAID_AT}), b.created_at, b.updated_at, {moved}"
        f" FROM private_sessions b WHERE {HAS_PAYMENT}"
    )
    old = ", ".join(f"b.{o}" for o, _ in MEETING_COLUMNS)
    new = ", ".join(n for _, n in MEETING_COLUMNS)
    op.execute(
        f"INSERT INTO meeting_links (booking_id, {new}) SELECT b.id, {old} FROM private_sessions b"
        " WHERE b.meeting_url IS NOT NULL OR b.meeting_provider IS NOT NULL OR b.meeting_external_id IS NOT NULL"
        " OR b.meeting_attempts > 0 OR b.meeting_next_attempt_at IS NOT NULL OR b.meeting_error IS NOT NULL"
    )
    terms = ", ".join(TERMS)
    op.execute(
        f"INSERT INTO booking_terms (booking_id, {terms}) SELECT b.id, "
        + ", ".join(f"b.terms_{t}" if t == "full_refund_hours" else f"COALESCE(b.terms_{t}, 0)" for t in TERMS)
        + " FROM private_sessions b WHERE b.terms_full_refund_hours IS NOT NULL"
    )
    _refused_payments()
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("payment_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE refunds SET payment_id = COALESCE("
        "(SELECT p.id FROM payments p WHERE p.booking_id = refunds.session_id AND p.state = 'refused'"
        " AND p.stripe_payment_intent_id = refunds.payment_intent_id),"
        "(SELECT p.id FROM payments p WHERE p.booking_id = refunds.session_id AND p.state <> 'refused'))"
    )
    with op.batch_alter_table("refunds") as batch:
        batch.alter_column("payment_id", existing_type=sa.Uuid(), nullable=False)
        batch.create_foreign_key(
            op.f("fk_refunds_payment_id_payments"), "payments", ["payment_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index(op.f("ix_refunds_payment_id"), ["payment_id"])


def _refused_payments() -> None:
    """A refund of a payment intent that is not the booking's own: a refused payment (0006), one
    per booking and intent, paid when its first refund was made, in the refunds' currency."""
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT r.session_id AS booking_id, r.payment_intent_id AS intent, MIN(r.created_at) AS first_at,"
            " SUM(r.amount) AS total, MIN(r.currency) AS currency"
            " FROM refunds r JOIN private_sessions b ON b.id = r.session_id"
            " WHERE r.payment_intent_id IS NOT NULL"
            " AND (b.stripe_payment_intent_id IS NULL OR r.payment_intent_id <> b.stripe_payment_intent_id)"
            " GROUP BY r.session_id, r.payment_intent_id"
        ).columns(
            sa.column("booking_id", sa.Uuid()),
            sa.column("intent", sa.String()),
            sa.column("first_at", UTC),
            sa.column("total", sa.Integer()),
            sa.column("currency", sa.String()),
        )
    ).all()
    payments = sa.table(
        "payments",
        *(sa.column(n) for n in ("kind", "state", "amount", "currency", "stripe_payment_intent_id", "refunded_amount")),
        sa.column("id", sa.Uuid()),
        sa.column("booking_id", sa.Uuid()),
        sa.column("paid_at", UTC),
        sa.column("created_at", UTC),
        sa.column("updated_at", UTC),
    )
    for row in rows:
        # What it paid is not kept for a refused payment; it was refunded in full: the refunds' sum.
        conn.execute(
            payments.insert().values(
                id=uuid.uuid4(),
                booking_id=row.booking_id,
                kind="checkout",
                state="refused",
                amount=row.total,
                currency=row.currency,
                stripe_payment_intent_id=row.intent,
                refunded_amount=row.total,
                paid_at=row.first_at,
                created_at=row.first_at,
                updated_at=row.first_at,
            )
        )


def _drop_old_columns() -> None:
    op.drop_index("ix_private_sessions_payment_intent", table_name="private_sessions")
    op.drop_index(op.f("ix_private_sessions_stripe_charge_id"), table_name="private_sessions")
    with op.batch_alter_table("private_sessions") as batch:
        batch.drop_constraint(op.f("uq_private_sessions_stripe_session_id"), type_="unique")
        for name in OLD_COLUMNS:
            batch.drop_column(name)


def downgrade() -> None:
    with op.batch_alter_table("private_sessions") as batch:
        for name, (type_, default) in OLD_COLUMNS.items():
            batch.add_column(sa.Column(name, type_, server_default=default, nullable=default is None))
    own = "SELECT p.{col} FROM payments p WHERE p.booking_id = private_sessions.id AND p.state <> 'refused'"
    for old, new in PAYMENT_COLUMNS:
        fill = f"({own.format(col=new)})"
        if OLD_COLUMNS[old][1] is not None:
            fill = f"COALESCE({fill}, {OLD_COLUMNS[old][1]})"
        op.execute(f"UPDATE private_sessions SET {old} = {fill}")
    link = "(SELECT m.{col} FROM meeting_links m WHERE m.booking_id = private_sessions.id)"
    for old, new in MEETING_COLUMNS:
        fill = link.format(col=new)
        op.execute(
            f"UPDATE private_sessions SET {old} = {fill if old != 'meeting_attempts' else f'COALESCE({fill}, 0)'}"
        )
    for name in TERMS:
        op.execute(
            f"UPDATE private_sessions SET terms_{name} ="
            f" (SELECT t.{name} FROM booking_terms t WHERE t.booking_id = private_sessions.id)"
        )
    with op.batch_alter_table("private_sessions") as batch:
        batch.create_unique_constraint(op.f("uq_private_sessions_stripe_session_id"), ["stripe_session_id"])
    op.create_index(op.f("ix_private_sessions_stripe_charge_id"), "private_sessions", ["stripe_charge_id"])
    op.create_index("ix_private_sessions_payment_intent", "private_sessions", ["stripe_payment_intent_id"])
    with op.batch_alter_table("refunds") as batch:
        batch.drop_index(op.f("ix_refunds_payment_id"))
        batch.drop_constraint(op.f("fk_refunds_payment_id_payments"), type_="foreignkey")
        batch.drop_column("payment_id")
    op.drop_table("booking_terms")
    op.drop_table("meeting_links")
    op.drop_index("ix_payments_charge", table_name="payments")
    op.drop_index("ix_payments_payment_intent", table_name="payments")
    op.drop_index("ix_payments_booking_id", table_name="payments")
    op.drop_index("uq_payments_booking_own", table_name="payments")
    op.drop_table("payments")
