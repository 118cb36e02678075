"""Bare endpoints the benchmarks compare the real ones against (benchmarks/, docs/PERFORMANCE.md).

Mounted by create_app() only when TUTORBOOK_BENCH_ENDPOINTS=true; never in production.

- ``POST /bench/insert``: one INSERT in one transaction through the same machinery a route
  uses (``DbSession``: a pooled connection, BEGIN, flush, COMMIT before the response), and
  the same envelope. The row is a ``stripe_events`` row with a random id, the table the
  webhook path writes to.
- ``GET /bench/ping``: no database at all, to see the framework's own floor.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter

from tutorbook.api.deps import DbSession
from tutorbook.clock import utc_now
from tutorbook.payments.models import StripeEvent
from tutorbook.schemas import Envelope, ok

router = APIRouter(prefix="/bench", tags=["Benchmarks"], include_in_schema=False)


@router.post("/insert", response_model=Envelope[str], status_code=201)
def insert_one(session: DbSession):
    """Insert one row in one transaction (committed before the response is sent)."""
    row = StripeEvent(
        id="evt_bench_" + secrets.token_hex(12),
        type="bench.insert",
        received_at=utc_now(),
        outcome="bench",
    )
    session.add(row)
    session.flush()
    return ok(row.id, "Inserted")


@router.get("/ping", response_model=Envelope[str])
def ping():
    """No database: the cost of routing, validation and the envelope."""
    return ok("pong")
