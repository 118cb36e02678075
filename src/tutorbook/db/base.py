"""The declarative Base (with the constraint naming convention), the UTC datetime type, new ids."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

from tutorbook.clock import as_utc

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return _utc(value)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], datetime | None] | None:
        """`process_result_value` after the dialect's own processor, as TypeDecorator composes them,
        but one call a value instead of four (issue #33: a My Bookings page reads 140 of them)."""
        inner = self.impl_instance.result_processor(dialect, coltype)
        if inner is None:
            return _utc
        return lambda value: _utc(inner(value))


def _utc(value: datetime | None) -> datetime | None:
    # as_utc, but a datetime already in UTC (asyncpg's and psycopg's) is returned as it is, which
    # is what as_utc's astimezone(UTC) returns for it too
    return value if value is None or value.tzinfo is UTC else as_utc(value)


def new_id() -> uuid.UUID:
    """A random primary key."""
    return uuid.uuid4()
