"""Alembic environment: runs against the URL put in the config by tutorbook.migrate."""

import sqlalchemy as sa
from alembic import context

from tutorbook import models  # noqa: F401  (fills Base.metadata)
from tutorbook.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no sqlalchemy.url: run migrations through tutorbook.migrate")
    engine = make_engine(url, pool_size=1, echo=False)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
