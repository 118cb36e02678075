"""A SELECT of plain columns run as Core on an ORM session's connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVarTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

Ts = TypeVarTuple("Ts")


def read_columns(
    session: Session, statement: sa.Select[*Ts], params: Mapping[str, Any] | None = None
) -> sa.Result[*Ts]:
    """What `session.execute(statement, params)` answers for a SELECT of columns (no ORM
    entity in it), after the same autoflush, on the session's connection and transaction, but
    without the ORM's execution: its compile state, its result's set-up and a loader per column
    cost ~0.7 M instructions on a My Bookings page of 20 rows (docs/PERFORMANCE.md section 9,
    "wt/perf33"). Not for a statement that loads ORM objects."""
    if session.autoflush:
        session.flush()  # a no-op when nothing is pending, as the autoflush would be
    return session.connection().execute(statement, params)
