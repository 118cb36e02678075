"""The app under benchmark: Tutorbook plus bare endpoints the real ones are compared against.

`uvicorn bench_app:app` (the harness puts benchmarks/ on PYTHONPATH); the product never mounts
these routes (docs/PERFORMANCE.md).

- ``POST /bench/insert``: one INSERT in one transaction through the same machinery a route
  uses (the write door ``Services.tx``: a pooled connection, BEGIN, flush, COMMIT before the response), and
  the same envelope. The row is a ``stripe_events`` row with a random id, the table the
  webhook path writes to.
- ``GET /bench/ping``: no database at all, to see the framework's own floor.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, FastAPI
from sqlalchemy.orm import Session

from tutorbook.api.deps import ServicesDep
from tutorbook.app import create_app
from tutorbook.clock import utc_now
from tutorbook.config import Settings, get_settings
from tutorbook.logs import configure_logging
from tutorbook.payments.models import StripeEvent
from tutorbook.schemas import Envelope, ok

router = APIRouter(prefix="/bench", tags=["Benchmarks"], include_in_schema=False)


@router.post("/insert", response_model=Envelope[str], status_code=201)
async def insert_one(svc: ServicesDep):
    """Insert one row in one transaction (committed before the response is sent)."""
    return ok(await svc.tx(_insert), "Inserted")


def _insert(session: Session) -> str:
    row = StripeEvent(
        id="evt_bench_" + secrets.token_hex(12),
        type="bench.insert",
        received_at=utc_now(),
        outcome="bench",
    )
    session.add(row)
    session.flush()
    return row.id


@router.get("/ping", response_model=Envelope[str])
def ping():
    """No database: the cost of routing, validation and the envelope."""
    return ok("pong")


def create_bench_app(settings: Settings | None = None) -> FastAPI:
    """Tutorbook's app (create_app) with the /bench routes."""
    app = create_app(settings)
    app.include_router(router)
    return app


def _from_environment() -> FastAPI:
    """What `tutorbook.asgi:app` does (tracing included, when TUTORBOOK_TRACING is on), plus the
    /bench routes."""
    settings = get_settings()
    configure_logging(json_lines=settings.log_json, level=settings.log_level, production=settings.is_production)
    if settings.tracing == "off":
        return create_bench_app(settings)
    from tutorbook import telemetry

    return telemetry.setup(settings).instrument_app(create_bench_app(settings))


app = _from_environment()
