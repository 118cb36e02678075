"""The handlers that render every error in the {success, message, data} envelope: AppError (the
domain's errors, `tutorbook.errors`), HTTP errors, validation errors, a pool timeout and a lost
database connection. Installed by `create_app()`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tutorbook.errors import AppError, ServiceUnavailable, envelope

log = logging.getLogger("tutorbook.http")

REFUSED_METRIC = "tutorbook_http_busy_refusals_total"
BUSY = ServiceUnavailable.message  # every busy 503 says the same


def note_refusal(app: Any, cause: str, path: str) -> None:
    """Record a 503 "busy" answer and which bounded wait gave it (`cause`): one WARNING line and
    the counter `tutorbook_http_busy_refusals_total{cause}` of the app's metrics. The answer itself
    is the same whatever the cause (a client only needs Retry-After)."""
    metrics = getattr(getattr(app, "state", None), "metrics", None)
    if metrics is not None:
        metrics.inc(REFUSED_METRIC, cause=cause)
    log.warning("busy: refused", extra={"cause": cause, "path": path})


def error_response(
    status: int, message: str, data: Any = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error in the envelope."""
    body = envelope(jsonable_encoder(data), message, success=False)
    return JSONResponse(body, status_code=status, headers=headers)


_HTTP_MESSAGES = {
    401: "Authentication required",
    403: "You are not allowed to do this",
    404: "Not found",
    405: "Method not allowed",
}


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        out.append({"field": ".".join(loc) or "body", "message": err.get("msg", "invalid")})
    return out


def install_error_handlers(app: FastAPI, *, retry_after_s: float = 1) -> None:
    """Render AppError, HTTP errors and validation errors in the envelope (an unexpected
    exception is logged and answered by app.RequestIdMiddleware, where the request id is known).
    Every 503 (busy: no database connection or worker in time) says when to try again."""
    busy = {"Retry-After": str(max(1, round(retry_after_s)))}

    @app.exception_handler(AppError)
    async def _app_error(req: Request, exc: AppError) -> JSONResponse:
        headers = exc.headers
        if exc.status_code == 503 and not (headers and "Retry-After" in headers):
            headers = {**(headers or {}), **busy}
        if isinstance(exc, ServiceUnavailable):
            note_refusal(req.app, exc.cause, req.url.path)
        return error_response(exc.status_code, exc.message, exc.data, headers)

    @app.exception_handler(sa.exc.TimeoutError)
    async def _pool_timeout(req: Request, _exc: sa.exc.TimeoutError) -> JSONResponse:
        # No pooled connection came free within TUTORBOOK_DB_POOL_TIMEOUT_SECONDS: overload, not
        # a fault. Nothing was written (the transaction never began), so trying again is safe.
        note_refusal(req.app, "db_pool", req.url.path)
        return error_response(503, BUSY, None, busy)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        message: str | None = exc.detail if isinstance(exc.detail, str) else None
        message = _HTTP_MESSAGES.get(exc.status_code) if message in (None, "") else message
        return error_response(exc.status_code, message or "Error", None, exc.headers)

    @app.exception_handler(sa.exc.DBAPIError)
    async def _database_error(req: Request, exc: sa.exc.DBAPIError) -> JSONResponse:
        # A pooled connection found dead (PostgreSQL restarted, a proxy dropped it): the pool is
        # refreshed and this request's transaction never committed, so "try again" is safe.
        if exc.connection_invalidated:
            note_refusal(req.app, "db_connection_lost", req.url.path)
            return error_response(503, "The database connection was lost; try again in a moment", None, busy)
        raise exc

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "Invalid input", _field_errors(exc))
