"""Cache version counters (issue #33): one row per cached thing (a teacher's schedule, the
teacher list), moved on in the transaction that changes it, so every process drops its cached
answer at once

Revision ID: 0011_cache_versions
Revises: 0010_operator_console
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_cache_versions"
down_revision = "0010_operator_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cache_versions",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cache_versions")
