"""create_app(): routers, pages, error handlers, request ids."""

from __future__ import annotations

import importlib
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from tutorbook import health
from tutorbook.accounts.router import auth, students
from tutorbook.accounts.security import LoginThrottle, password_hasher
from tutorbook.bookings.router import router as sessions
from tutorbook.config import Settings, get_settings
from tutorbook.db import Database
from tutorbook.errors import error_response, install_error_handlers
from tutorbook.logs import new_request_id, request_id_var
from tutorbook.metrics import Metrics
from tutorbook.payments.router import router as stripe_webhook
from tutorbook.services import build_services
from tutorbook.teachers.router import router as teachers

log = logging.getLogger("tutorbook.http")


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> FastAPI:
    """The Tutorbook ASGI app; the database must already be migrated."""
    settings = settings or get_settings()
    db = db or Database(settings.database_url, pool_size=settings.db_pool_size)
    app = FastAPI(
        lifespan=_lifespan,
        title="Tutorbook",
        version="0.1.0",
        description="Paid 1:1 tutoring sessions with Stripe Checkout. Every response is "
        "`{success, message, data}`; booking `status` is 0 Pending, 1 Confirmed, 2 Completed, 3 Cancelled.",
    )
    app.state.settings = settings
    app.state.db = db
    app.state.hasher = password_hasher(settings)
    app.state.login_throttle = LoginThrottle(
        max_failures=settings.login_max_failures, window_seconds=settings.login_window_seconds
    )
    app.state.metrics = Metrics()
    app.state.services = build_services(settings, db)
    install_error_handlers(app)
    for router in (auth, students, teachers, sessions, stripe_webhook, health.router):
        app.include_router(router)
    _include_optional(app, "tutorbook.admin.router")
    if settings.bench_endpoints:
        _include_optional(app, "tutorbook.bench")
    _install_pages(app)
    _install_middleware(app, settings)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """Start the periodic jobs in this process when configured (tutorbook.jobs.scheduler)."""
    scheduler = None
    if app.state.settings.jobs_enabled:
        try:
            from tutorbook.jobs import scheduler as jobs_scheduler
        except ImportError:
            jobs_scheduler = None
        if jobs_scheduler is not None:
            scheduler = jobs_scheduler.start(app.state.services, metrics=app.state.metrics)
    try:
        yield
    finally:
        if scheduler is not None:
            await scheduler.stop()


def _include_optional(app: FastAPI, module: str) -> None:
    """Include `module.router` if that module exists."""
    try:
        router = importlib.import_module(module).router
    except ModuleNotFoundError as exc:
        if not (exc.name and module.startswith(exc.name)):
            raise
        return
    app.include_router(router)


def _install_pages(app: FastAPI) -> None:
    try:
        from tutorbook.web import pages
    except ImportError:  # pages arrive in their own module
        return
    pages.install(app)


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
        )

    app.add_middleware(RequestIdMiddleware)


class RequestIdMiddleware:
    """Read or make the request id, keep it in a context variable for the logs, send it back as
    X-Request-ID, and log one line per request. A plain ASGI middleware: Starlette's
    BaseHTTPMiddleware (`@app.middleware("http")`) cost 0.35-1.5 ms of CPU a request
    (docs/PERFORMANCE.md).

    It is also where an unexpected exception ends: logged once, with the request id and the
    traceback, and answered 500 in the envelope (with X-Request-ID). Starlette's own last resort
    sits outside this middleware, so its answer had no request id, and it re-raised the error to
    the server, which logged the traceback again and dropped the keep-alive connection."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = new_request_id(given)
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status, sent = 500, {"start": False, "end": False}

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status, sent["start"] = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                sent["end"] = True
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                log.exception("unhandled error", extra={"method": scope["method"], "path": scope["path"]})
                if sent["start"] and not sent["end"]:
                    raise  # half an answer is out: only the server dropping the connection ends it
                if not sent["start"]:
                    await error_response(500, "Internal server error")(scope, receive, send_with_id)
                # Otherwise the answer was complete (a background task failed): the connection lives on.
            if log.isEnabledFor(logging.INFO):
                ms = round((time.perf_counter() - started) * 1000, 1)
                log.info(
                    "request", extra={"method": scope["method"], "path": scope["path"], "status": status, "ms": ms}
                )
        finally:
            request_id_var.reset(token)
