"""users.locale: the language a user's dates and times are written in when no browser is asking
(emails), taken from the browser at registration and login and changeable on /settings

Revision ID: 0012_user_locale
Revises: 0011_cache_versions
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_user_locale"
down_revision = "0011_cache_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("locale", sa.String(35), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("locale")
