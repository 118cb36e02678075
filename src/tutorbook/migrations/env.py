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
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Alembic's batch mode rebuilds a table (copy, DROP, rename); with foreign keys on, the DROP
        # would delete (ON DELETE CASCADE) every row that refers to it (0015 rebuilds
        # private_sessions). Off for the migrations (a PRAGMA outside any transaction), checked after.
        _pragma(connection, "PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"the migrations left rows whose foreign keys point nowhere: {broken[:5]}")
    if sqlite:
        _pragma(connection, "PRAGMA foreign_keys=ON")


def _pragma(connection: sa.Connection, sql: str) -> None:
    """Run `sql` on the driver's connection itself: through SQLAlchemy it would open a transaction
    (BEGIN IMMEDIATE, tutorbook.db), inside which SQLite ignores the foreign_keys pragma."""
    driver = connection.connection.driver_connection
    assert driver is not None  # an open connection
    cursor = driver.cursor()
    cursor.execute(sql)
    cursor.close()


run_migrations_online()
