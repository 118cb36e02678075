"""create_app(): routers, pages, error handlers, request ids."""

from __future__ import annotations

import importlib
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from tutorbook import health
from tutorbook.accounts.router import auth, students
from tutorbook.accounts.security import LoginThrottle, password_hasher
from tutorbook.bookings.router import router as sessions
from tutorbook.config import Settings, get_settings
from tutorbook.db import Database
from tutorbook.errors import install_error_handlers
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

    @app.middleware("http")
    async def request_id(request: Request, call_next):
        rid = new_request_id(request.headers.get("x-request-id"))
        token = request_id_var.set(rid)
        started = time.perf_counter()
        try:
            response = await call_next(request)
            response.headers["X-Request-ID"] = rid
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.url.path,
                    "status": response.status_code,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            return response
        finally:
            request_id_var.reset(token)
