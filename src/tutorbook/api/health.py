"""/health, /health/ready and /metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from tutorbook.api.deps import ServicesDep, check_metrics_access
from tutorbook.bookings import repository as bookings
from tutorbook.errors import error_response
from tutorbook.schemas import Envelope, ErrorEnvelope, ok

router = APIRouter(tags=["Health"])


@router.get("/health", response_model=Envelope[str], name="live")
def health():
    """Liveness: the process answers."""
    return ok("alive")


@router.get(
    "/health/ready",
    response_model=Envelope[str],
    responses={503: {"model": ErrorEnvelope, "description": "Database unavailable"}},
)
async def ready(svc: ServicesDep):
    """Readiness: the database answers."""
    db = svc.db

    def probe() -> None:
        with db.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    try:
        await run_in_threadpool(probe)
    except Exception:
        return error_response(503, "Database unavailable")
    return ok("ready")


@router.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
def metrics(svc: ServicesDep, request: Request):
    """Prometheus text format, for the metrics token or an admin (401/403 otherwise)."""
    check_metrics_access(svc, authorization=request.headers.get("authorization"))
    counts = svc.tx_sync(bookings.count_by_status)
    return PlainTextResponse(svc.metrics.render(counts), media_type="text/plain; version=0.0.4")
