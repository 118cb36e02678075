"""/health, /health/live, /health/ready and /metrics.

For a load balancer: /health/live says the process answers (restart it when it does not);
/health/ready says it can serve: the database answers and its schema is at the migrations' head
(take it out of rotation otherwise, e.g. during a rolling upgrade before `tutorbook db upgrade`).
`/health` answers as /health/live (kept for existing checks)."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tutorbook import drain
from tutorbook.api.deps import ServicesDep, check_metrics_access
from tutorbook.api.errors import error_response
from tutorbook.api.routing import Router
from tutorbook.bookings import queries
from tutorbook.schemas import Envelope, ErrorEnvelope, Reply, ok

router = Router(tags=["Health"])
MIGRATIONS = Path(__file__).parents[1] / "migrations"


@functools.cache
def schema_heads() -> frozenset[str]:
    """The head revision(s) of the migrations shipped with this code (read once: they do not change)."""
    return frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


@router.get("/health", response_model=Envelope[str], name="live")
def health() -> Reply:
    """Liveness: the process answers."""
    return ok("alive")


@router.get("/health/live", response_model=Envelope[str], name="liveness")
def liveness() -> Reply:
    """Liveness for a load balancer: the process answers (no database call)."""
    return ok("alive")


@router.get(
    "/health/ready",
    response_model=Envelope[str],
    responses={503: {"model": ErrorEnvelope, "description": "Database unavailable, schema not at head, or draining"}},
)
async def ready(svc: ServicesDep) -> Reply | Response:
    """Readiness: the database answers and its migrations are at this release's head, and the
    process is not draining before a shutdown (TUTORBOOK_SHUTDOWN_DRAIN_SECONDS)."""
    if drain.is_draining():
        return error_response(503, "Draining: this replica is shutting down")
    db, heads = svc.db, schema_heads()

    def probe() -> frozenset[str]:
        with db.engine.connect() as conn:
            return frozenset(MigrationContext.configure(conn).get_current_heads())

    try:
        at = await run_in_threadpool(probe)
    except Exception:
        return error_response(503, "Database unavailable")
    if at != heads:
        shown = ", ".join(sorted(at)) or "none"
        return error_response(503, f"Database schema at {shown}, expected {', '.join(sorted(heads))}")
    return ok("ready")


@router.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
def metrics(svc: ServicesDep, request: Request) -> PlainTextResponse:
    """Prometheus text format, for the metrics token or an admin (401/403 otherwise)."""
    check_metrics_access(svc, authorization=request.headers.get("authorization"))
    counts = svc.tx_sync(queries.count_by_status)
    return PlainTextResponse(svc.metrics.render(counts), media_type="text/plain; version=0.0.4")
