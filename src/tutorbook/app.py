"""create_app(): routers, pages, error handlers, request ids."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from tutorbook.accounts.security import LoginThrottle
from tutorbook.api import admin, health, notifications, sessions, stripe_webhook, teachers
from tutorbook.api.accounts import auth, students
from tutorbook.config import Settings, get_settings
from tutorbook.db import Database
from tutorbook.errors import install_error_handlers
from tutorbook.flows.services import build_services
from tutorbook.jobs import scheduler as jobs_scheduler
from tutorbook.logs import new_request_id, request_id_var
from tutorbook.web import pages

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
    services = build_services(settings, db)
    # The one typed way in for routes and pages is `tutorbook.api.deps.ServicesDep`; the other
    # attributes stay for tests and the CLI.
    app.state.services = services
    app.state.settings = settings
    app.state.db = db
    app.state.hasher = services.hasher
    app.state.metrics = services.metrics
    app.state.login_throttle = LoginThrottle(
        max_failures=settings.login_max_failures, window_seconds=settings.login_window_seconds
    )
    install_error_handlers(app)
    routers = (
        auth,
        notifications.auth,
        students,
        teachers.router,
        sessions.router,
        notifications.router,
        notifications.feeds,
        stripe_webhook.router,
        admin.router,
        health.router,
    )
    for router in routers:
        app.include_router(router)
    pages.install(app)
    _install_middleware(app, settings)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the periodic jobs in this process when configured (tutorbook.jobs.scheduler)."""
    scheduler = None
    if app.state.settings.jobs_enabled:
        scheduler = jobs_scheduler.start(app.state.services, metrics=app.state.metrics)
    try:
        yield
    finally:
        if scheduler is not None:
            await scheduler.stop()


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
    (docs/PERFORMANCE.md)."""

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
        status = 500

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
            if log.isEnabledFor(logging.INFO):
                ms = round((time.perf_counter() - started) * 1000, 1)
                log.info(
                    "request", extra={"method": scope["method"], "path": scope["path"], "status": status, "ms": ms}
                )
        finally:
            request_id_var.reset(token)
