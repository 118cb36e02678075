"""create_app(): routers, pages, error handlers, request ids."""

from __future__ import annotations

import importlib
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from fastapi.utils import generate_unique_id
from pydantic.alias_generators import to_camel

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
        generate_unique_id_function=operation_id,
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


def operation_id(route: APIRoute) -> str:
    """The OpenAPI operationId, `Tag_camelCase` (`Sessions_cancelPayment`): the route's first tag and its
    name (the function's, or the route's `name=`). Client generators make their method names from it,
    so renaming a route function renames the frontend's method; tests/test_openapi.py pins the list."""
    if not route.tags:
        return generate_unique_id(route)  # untagged routes are the HTML pages, kept out of the document
    return f"{route.tags[0]}_{to_camel(route.name)}"


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
