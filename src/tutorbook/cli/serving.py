"""`tutorbook serve`, `worker` and `stripe-sandbox`: the long-running processes."""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Any

import typer

from tutorbook import startup
from tutorbook.cli.common import (
    app,
    load_settings,
    migrate_or_exit,
    sandbox_config,
    services_for,
    starting,
)

if TYPE_CHECKING:  # the commands import what they use when they run (a fast `tutorbook --help`)
    from http.server import ThreadingHTTPServer
    from types import FrameType

    from tutorbook.config import Settings
    from tutorbook.flows.services import Services
    from tutorbook.metrics import Metrics
    from tutorbook.telemetry import Telemetry


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8000, help="Port to listen on"),
    workers: int = typer.Option(1, help="Worker processes (PostgreSQL only for more than one)"),
    jobs: bool = typer.Option(True, help="Run the periodic jobs in this process"),
) -> None:
    """Migrate, then serve the API, the pages, the jobs and (without a Stripe key) the sandbox."""
    overrides: dict[str, Any] = {}
    if "TUTORBOOK_PUBLIC_URL" not in os.environ:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        overrides["public_url"] = f"http://{shown}:{port}"
    if not jobs:
        overrides["jobs_enabled"] = False
    settings = load_settings(**overrides)
    with_sandbox = settings.uses_sandbox and settings.sandbox_enabled
    with starting():
        startup.check_port(host, port, what="Tutorbook", hint="pass another --port")
        if with_sandbox:
            startup.check_port(
                settings.sandbox_host,
                settings.sandbox_port,
                what="the Stripe sandbox",
                hint="set TUTORBOOK_SANDBOX_PORT",
            )
            startup.check_var_dir(settings.var_dir)  # the sandbox keeps its objects there
    migrate_or_exit(settings)
    sandbox = None
    if with_sandbox:
        from stripe_sandbox.server import start_in_thread

        webhook = settings.public_url.rstrip("/") + "/api/StripeWebhook/webhook"
        sandbox = start_in_thread(
            sandbox_config(settings, webhook_url=webhook), host=settings.sandbox_host, port=settings.sandbox_port
        )
        typer.echo(f"Stripe sandbox on {sandbox.base_url} (test card 4242 4242 4242 4242)")
    for key, value in overrides.items():
        os.environ[f"TUTORBOOK_{key.upper()}"] = str(value)
    from tutorbook import http_server

    typer.echo(f"Tutorbook on {settings.public_url}  (API docs: {settings.public_url}/docs)")
    # uvicorn raises the SIGTERM it caught again once it has shut down; with this handler in
    # place that ends `serve` normally (exit 0): a stop asked for is not a crash to the supervisor.
    signal.signal(signal.SIGTERM, _stopped)
    try:
        # proxy_headers off: the app believes X-Forwarded-For only from TUTORBOOK_TRUSTED_PROXIES.
        # Each request head must arrive within TUTORBOOK_HEADER_TIMEOUT_SECONDS (HeaderTimeoutProtocol);
        # an idle kept-alive connection is closed after 5 s (uvicorn's timeout_keep_alive).
        # SIGTERM: drain for TUTORBOOK_SHUTDOWN_DRAIN_SECONDS (answer everything, /health/ready 503),
        # then stop accepting, let the requests in flight finish (at most the grace), run the
        # lifespan's shutdown (the jobs, the pools), exit 0.
        http_server.run(
            "tutorbook.asgi:app",
            host=host,
            port=port,
            workers=workers,
            drain_seconds=settings.shutdown_drain_seconds,
            log_config=None,
            proxy_headers=False,
            http=http_server.HeaderTimeoutProtocol,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        )
    finally:
        if sandbox is not None:
            sandbox.stop()
    _leave_stuck_threads()


def _leave_stuck_threads(wait_s: float = 1.0) -> None:
    """After the grace, a request still stuck in a worker thread (e.g. waiting on a lock in the
    database) must not keep the process: Python would wait for that thread at exit. Its task was
    cancelled and its transaction goes with the connection; exit now."""
    import logging
    import threading
    import time

    deadline = time.monotonic() + wait_s
    while True:
        stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
        if not stuck or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if stuck:
        logging.getLogger("tutorbook.http").warning(
            "exiting with work still stuck after the shutdown grace", extra={"threads": len(stuck)}
        )
        logging.shutdown()
        os._exit(0)


def _stopped(signum: int, frame: FrameType | None) -> None:
    """SIGTERM after uvicorn's graceful shutdown: nothing more to do."""


@app.command("stripe-sandbox")
def stripe_sandbox(
    host: str = typer.Option(None, help="Default: TUTORBOOK_SANDBOX_HOST"),
    port: int = typer.Option(None, help="Default: TUTORBOOK_SANDBOX_PORT"),
    webhook_url: str = typer.Option(
        None,
        help="Where to deliver the platform's events (default: the app's webhook); Connect events go to "
        "/api/StripeWebhook/connect beside it",
    ),
) -> None:
    """Run only the Stripe sandbox."""
    settings = load_settings()
    from stripe_sandbox.server import run

    webhook = webhook_url or settings.public_url.rstrip("/") + "/api/StripeWebhook/webhook"
    run(sandbox_config(settings, webhook_url=webhook), host or settings.sandbox_host, port or settings.sandbox_port)


@app.command()
def worker(
    metrics_port: int = typer.Option(0, help="Serve /metrics (Prometheus) on this port; 0: off"),
    metrics_host: str = typer.Option("127.0.0.1", help="Address for --metrics-port"),
    only: str = typer.Option(
        None, "--only", help="Run only these jobs, comma-separated (e.g. mail,reminders); default: all"
    ),
) -> None:
    """Run only the periodic jobs (no HTTP app) until SIGINT/SIGTERM; any number may run (on
    PostgreSQL each sweep still runs once per interval across all of them)."""
    import asyncio

    from tutorbook.jobs import scheduler
    from tutorbook.metrics import Metrics

    names = _job_names(only)
    settings = load_settings()
    with starting():
        startup.check_port(metrics_host, metrics_port, what="the worker's /metrics", hint="pass another --metrics-port")
    migrate_or_exit(settings)
    traced = _tracing(settings)
    svc, metrics = services_for(settings), Metrics()
    exporter = None
    if metrics_port:
        exporter = _metrics_exporter(svc, metrics, host=metrics_host, port=metrics_port)
    typer.echo(f"Tutorbook worker: running {', '.join(names)} (Ctrl-C to stop)", err=True)
    try:
        asyncio.run(scheduler.run_forever(svc, metrics=metrics, names=names))
    finally:
        if exporter is not None:
            exporter.shutdown()
        svc.db.dispose()
        if traced is not None:
            traced.shutdown()  # the spans still buffered go out


def _tracing(settings: Settings) -> Telemetry | None:
    """Tracing switched on in this process when TUTORBOOK_TRACING says so (before the database's
    engines are made, so that they are traced); None when off, with nothing of it imported."""
    if settings.tracing == "off":
        return None
    from tutorbook import telemetry

    return telemetry.setup(settings)


def _job_names(only: str | None) -> list[str]:
    """The jobs named in --only (in the scheduler's order), or all; an unknown name exits 2."""
    from tutorbook import jobs

    if only is None:
        return list(jobs.JOBS)
    asked = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in asked if n not in jobs.JOBS]
    if unknown or not asked:
        what = f"unknown job {', '.join(map(repr, unknown))}" if unknown else "--only names no job"
        typer.echo(f"error: {what}; the jobs are: {', '.join(jobs.JOBS)}", err=True)
        raise typer.Exit(2)
    return [n for n in jobs.JOBS if n in asked]


def _metrics_exporter(svc: Services, metrics: Metrics, *, host: str, port: int) -> ThreadingHTTPServer:
    """A tiny /metrics endpoint in a thread, for a worker that has no app to serve it."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tutorbook.api.deps import check_metrics_access
    from tutorbook.bookings import queries
    from tutorbook.errors import AppError, envelope

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path != "/metrics":
                self.send_error(404)
                return
            content_type = "text/plain; version=0.0.4"
            try:  # the same rule as the app's /metrics: the metrics token or an admin's token
                check_metrics_access(svc, authorization=self.headers.get("authorization"))
                status, body = 200, metrics.render(svc.tx_sync(queries.count_by_status)).encode()
            except AppError as exc:
                status, content_type = exc.status_code, "application/json"
                body = json.dumps(envelope(None, exc.message, success=False)).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
