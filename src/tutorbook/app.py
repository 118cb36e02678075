"""create_app(): routers, pages, error handlers, request ids."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from fastapi.utils import generate_unique_id
from pydantic.alias_generators import to_camel
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tutorbook import tracing
from tutorbook.api import (
    admin,
    calendars,
    credits,
    fastapi_memo,
    health,
    notifications,
    series,
    sessions,
    stripe_webhook,
    teachers,
)
from tutorbook.api.accounts import auth, students
from tutorbook.api.errors import error_response, install_error_handlers
from tutorbook.api.limits import BodyLimitMiddleware
from tutorbook.api.overload import AdmissionMiddleware
from tutorbook.config import Settings, get_settings
from tutorbook.db import Database
from tutorbook.flows.services import build_services, open_database
from tutorbook.jobs import scheduler as jobs_scheduler
from tutorbook.logs import new_request_id, request_id_var
from tutorbook.web import pages

log = logging.getLogger("tutorbook.http")


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> FastAPI:
    """The Tutorbook ASGI app; the database must already be migrated."""
    settings = settings or get_settings()
    db = db or open_database(settings)
    fastapi_memo.install()
    app = FastAPI(
        lifespan=_lifespan,
        title="Tutorbook",
        version="0.1.0",
        description="Paid 1:1 tutoring sessions with Stripe Checkout. Every response is "
        "`{success, message, data}`; booking `status` is 0 Pending, 1 Confirmed, 2 Completed, 3 Cancelled.",
        generate_unique_id_function=operation_id,
    )
    services = build_services(settings, db)
    # The one typed way in for routes and pages is `tutorbook.api.deps.ServicesDep`; the other
    # attributes stay for tests and the CLI.
    app.state.services = services
    app.state.settings = settings
    app.state.db = db
    app.state.hasher = services.hasher
    app.state.metrics = services.metrics
    app.state.login_throttle = services.login_throttle
    install_error_handlers(app, retry_after_s=settings.retry_after_seconds)
    routers = (
        # First: Starlette tries the routes in order, and Stripe's webhook is the busiest one.
        stripe_webhook.router,
        auth,
        notifications.auth,
        students,
        calendars.router,
        credits.teacher_router,
        teachers.router,
        sessions.router,
        series.router,
        credits.router,
        credits.wallet,
        credits.admin,
        notifications.router,
        notifications.feeds,
        admin.router,
        health.router,
    )
    for router in routers:
        app.include_router(router)
    pages.install(app)
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
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Size the worker threads, tune the garbage collector, start the periodic jobs in this
    process when configured (tutorbook.jobs.scheduler)."""
    settings = app.state.settings
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
    _tune_gc(settings)
    scheduler = None
    if app.state.settings.jobs_enabled:
        scheduler = jobs_scheduler.start(app.state.services, metrics=app.state.metrics)
    try:
        yield
    finally:
        if scheduler is not None:
            await scheduler.stop()
        await app.state.services.gateway.aclose()
        await app.state.db.dispose_async()


def _tune_gc(settings: Settings) -> None:
    """Issue #33: full (generation 2) collections walked every object the process ever made,
    76-93 ms each with the app loaded, dozens a minute under load. Frozen objects (what start-up
    made: modules, the app, the routes, the ORM's mappings) are never walked again, and a higher
    first threshold collects the young generation less often (docs/PERFORMANCE.md, section 9)."""
    gc.set_threshold(*settings.gc_thresholds)
    if settings.gc_freeze:
        gc.collect()
        gc.freeze()


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["Link"],  # the teacher's schedule's next page
        )

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Inside the request id and security headers: a refused request still gets both.
    app.add_middleware(
        AdmissionMiddleware,
        limit=settings.max_requests_in_flight,
        queue=settings.admission_queue,
        wait_s=settings.admission_wait_seconds,
        retry_after_s=settings.retry_after_seconds,
    )
    app.add_middleware(RequestIdMiddleware)
    # Outside RequestIdMiddleware, so that its last-resort 500 (and the body-size 413) are secured too.
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.trusted_proxies:
        # The client address (login throttle, logs) from X-Forwarded-For, only when the peer is
        # one of these proxies; `tutorbook serve` turns off uvicorn's own handling.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)


class RequestIdMiddleware:
    """Read or make the request id, keep it in a context variable for the logs, send it back as
    X-Request-ID, and log one line per request. A plain ASGI middleware: Starlette's
    BaseHTTPMiddleware (`@app.middleware("http")`) cost 0.35-1.5 ms of CPU a request
    (docs/PERFORMANCE.md).

    It is also where an unexpected exception ends: logged once, with the request id and the
    traceback, and answered 500 in the envelope (with X-Request-ID). Starlette's own last resort
    sits outside this middleware, so its answer had no request id, and it re-raised the error to
    the server, which logged the traceback again and dropped the keep-alive connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = new_request_id(given)
        token = request_id_var.set(rid)
        tracing.annotate(request_id=rid)  # on the request's span, with tracing on
        started = time.perf_counter()
        status, sent = 500, {"start": False, "end": False}

        async def send_with_id(message: Message) -> None:
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


# For the server-rendered pages: their only script is a static file, their only styles one CSS
# file. No form-action: the booking form's redirect to Stripe Checkout (another origin) counts as
# a form target in Chromium. The Swagger/ReDoc pages load their scripts from a CDN: left alone.
PAGE_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
NO_CSP_PATHS = ("/docs", "/redoc")


def security_headers(path: str, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` plus nosniff everywhere; no-store where a token or cookie is sent; CSP, Referrer-Policy
    and framing rules on HTML pages. Headers the route set itself are kept."""
    names = {k.lower(): v for k, v in headers}
    extra = [] if b"x-content-type-options" in names else [(b"x-content-type-options", b"nosniff")]
    if path.startswith("/api/Auth/") or b"set-cookie" in names:  # login and register answers carry tokens
        headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
        extra.append((b"cache-control", b"no-store"))
    if names.get(b"content-type", b"").startswith(b"text/html") and not path.startswith(NO_CSP_PATHS):
        extra.append((b"content-security-policy", PAGE_CSP))
        for name, value in ((b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")):
            if name not in names:
                extra.append((name, value))
    return [*headers, *extra]


class SecurityHeadersMiddleware:
    """Adds security_headers() to every HTTP response; plain ASGI, like RequestIdMiddleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = security_headers(path, list(message.get("headers", [])))
            await send(message)

        await self.app(scope, receive, send_with_headers)
