"""The `tutorbook` command: serve, worker, db, demo-data, create-admin, stripe-sandbox, reports, jobs, mail."""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import traceback
from typing import Any

import typer
from pydantic import ValidationError

from tutorbook import startup
from tutorbook.config import ConfigurationError, Settings, get_settings
from tutorbook.startup import StartupError

app = typer.Typer(help="Tutorbook: paid 1:1 tutoring with Stripe Checkout.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.")
app.add_typer(db_app, name="db")
_options = {"debug": False}


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="On a start-up failure, show the traceback too")):
    """Tutorbook: paid 1:1 tutoring with Stripe Checkout."""
    _options["debug"] = debug


@contextlib.contextmanager
def _starting():
    """A start-up failure: one line on stderr (the traceback too with --debug), exit 1 or 2."""
    try:
        yield
    except StartupError as exc:
        typer.echo(f"error: {exc.line}", err=True)
        if _options["debug"]:
            traceback.print_exception(exc)
        raise typer.Exit(exc.exit_code) from exc


def _settings(**overrides) -> Settings:
    with _starting():
        try:
            settings = Settings(**overrides).resolved() if overrides else get_settings()
        except ConfigurationError as exc:
            raise StartupError(str(exc), exit_code=2) from exc
        except ValidationError as exc:
            raise startup.invalid_settings(exc) from exc
        except OSError as exc:  # a generated secret cannot be kept in var/
            raise startup.unwritable_var_dir(exc, Settings().var_dir) from exc
    from tutorbook.logs import configure_logging

    configure_logging(json_lines=settings.log_json, level=settings.log_level, production=settings.is_production)
    return settings


def _migrate(settings: Settings, revision: str = "head") -> None:
    """Check that the database answers, then migrate it (over the direct URL: DDL and Alembic's
    lock want a session of their own, not a pooler's); each failure one line."""
    with _starting():
        startup.check_database(settings.direct_url)
        startup.migrate(settings.direct_url, revision, debug=_options["debug"])


@db_app.command("upgrade")
def db_upgrade(revision: str = "head"):
    """Apply the migrations up to REVISION (default head)."""
    _migrate(_settings(), revision)
    typer.echo("database is at " + revision)


def _sandbox_config(settings: Settings, *, webhook_url: str | None):
    """The sandbox delivering the platform's events to `webhook_url` and the Connect events to
    the app's Connect endpoint beside it, each signed with its own secret."""
    from stripe_sandbox.config import SandboxConfig
    from tutorbook.payments.webhooks import CONNECT_WEBHOOK_PATH, WEBHOOK_PATH

    connect_url = webhook_url.removesuffix(WEBHOOK_PATH) + CONNECT_WEBHOOK_PATH if webhook_url else None
    return SandboxConfig(
        db_path=str(settings.var_dir / "stripe-sandbox.db"),
        public_url=settings.sandbox_url,
        webhook_url=webhook_url,
        webhook_secret=settings.stripe_webhook_secret,
        connect_webhook_url=connect_url,
        connect_webhook_secret=settings.stripe_connect_webhook_secret,
        substitute_cancel_url=settings.sandbox_substitute_cancel_url,
    )


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8000, help="Port to listen on"),
    workers: int = typer.Option(1, help="Worker processes (PostgreSQL only for more than one)"),
    jobs: bool = typer.Option(True, help="Run the periodic jobs in this process"),
):
    """Migrate, then serve the API, the pages, the jobs and (without a Stripe key) the sandbox."""
    overrides: dict[str, Any] = {}
    if "TUTORBOOK_PUBLIC_URL" not in os.environ:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        overrides["public_url"] = f"http://{shown}:{port}"
    if not jobs:
        overrides["jobs_enabled"] = False
    settings = _settings(**overrides)
    with_sandbox = settings.uses_sandbox and settings.sandbox_enabled
    with _starting():
        startup.check_port(host, port, what="Tutorbook", hint="pass another --port")
        if with_sandbox:
            startup.check_port(
                settings.sandbox_host,
                settings.sandbox_port,
                what="the Stripe sandbox",
                hint="set TUTORBOOK_SANDBOX_PORT",
            )
            startup.check_var_dir(settings.var_dir)  # the sandbox keeps its objects there
    _migrate(settings)
    sandbox = None
    if with_sandbox:
        from stripe_sandbox.server import start_in_thread

        webhook = settings.public_url.rstrip("/") + "/api/StripeWebhook/webhook"
        sandbox = start_in_thread(
            _sandbox_config(settings, webhook_url=webhook), host=settings.sandbox_host, port=settings.sandbox_port
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


def _stopped(signum, frame) -> None:
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
):
    """Run only the Stripe sandbox."""
    settings = _settings()
    from stripe_sandbox.server import run

    webhook = webhook_url or settings.public_url.rstrip("/") + "/api/StripeWebhook/webhook"
    run(_sandbox_config(settings, webhook_url=webhook), host or settings.sandbox_host, port or settings.sandbox_port)


@app.command("demo-data")
def demo_data():
    """Add demo teachers (with weekly hours) and a demo parent with two children; safe to repeat."""
    settings = _settings()
    _migrate(settings)
    from tutorbook import demo
    from tutorbook.accounts.security import password_hasher
    from tutorbook.db import Database

    db = Database(settings.database_url)
    with db.session_scope() as session:
        logins = demo.load(session, hasher=password_hasher(settings), settings=settings)
    if settings.uses_sandbox and settings.sandbox_enabled:
        _onboard_demo_teachers(settings, db, [email for role, email, _ in logins if role == "Teacher"])
    db.dispose()
    typer.echo("Demo logins:")
    for role, email, password in logins:
        typer.echo(f"  {role:<8} {email:<28} {password}")


def _onboard_demo_teachers(settings: Settings, db, emails: list[str]) -> None:
    """Connect the demo teachers' payouts in the sandbox (its hosted onboarding, "Submit"), so
    their bookings are destination charges. The sandbox is started for it unless it runs."""
    import asyncio

    import httpx
    import sqlalchemy as sa

    from tutorbook.accounts.models import User
    from tutorbook.flows import payouts
    from tutorbook.flows.services import build_services
    from tutorbook.identity import AuthUser

    sandbox = None
    try:
        httpx.get(settings.sandbox_url + "/_sandbox/clock", timeout=2)
    except httpx.HTTPError:
        from stripe_sandbox.server import start_in_thread

        sandbox = start_in_thread(
            _sandbox_config(settings, webhook_url=None), host=settings.sandbox_host, port=settings.sandbox_port
        )
    svc = build_services(settings, db)

    async def connect(teacher: AuthUser) -> bool:
        """Onboard the teacher at the sandbox if not yet; whether payouts are enabled. The
        gateway's connections belong to this call's event loop: closed before it ends."""
        try:
            status = await payouts.refresh(svc, teacher=teacher)
            if not status.enabled:
                url = await payouts.onboard(svc, teacher=teacher)
                async with httpx.AsyncClient(timeout=10) as client:
                    await client.post(url, data={"choice": "complete"})
                status = await payouts.refresh(svc, teacher=teacher)
            return status.enabled
        finally:
            await svc.gateway.aclose()

    try:
        with db.session_scope() as session:
            users = session.scalars(sa.select(User).where(User.email.in_(emails))).all()
            teachers = [AuthUser(u.id, u.role, u.email, u.full_name, u.time_zone) for u in users]
        for teacher in teachers:
            enabled = asyncio.run(connect(teacher))
            typer.echo(f"  payouts of {teacher.email}: {'enabled' if enabled else 'not enabled'}")
    except Exception as exc:  # the demo works without payouts (TUTORBOOK_REQUIRE_TEACHER_PAYOUTS=false)
        typer.echo(f"demo teachers' payouts not connected: {exc}", err=True)
    finally:
        if sandbox is not None:
            sandbox.stop()


@app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., prompt=True),
    full_name: str = typer.Option("Administrator", "--name"),
    password: str = typer.Option(None, help="Prompted for when omitted"),
):
    """Create an Admin account (admins cannot register through the API)."""
    settings = _settings()
    _migrate(settings)
    password = password or getpass.getpass("Password: ")
    from tutorbook.accounts import service as accounts
    from tutorbook.accounts.models import Role
    from tutorbook.accounts.security import password_hasher
    from tutorbook.clock import utc_now
    from tutorbook.db import Database
    from tutorbook.errors import AppError

    db = Database(settings.database_url)
    try:
        with db.session_scope() as session:
            accounts.create_user(
                session,
                hasher=password_hasher(settings),
                settings=settings,
                email=email,
                password=password,
                full_name=full_name,
                role=Role.ADMIN,
                now=utc_now(),
            )
    except AppError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    typer.echo(f"admin {email.lower()} created")


# -- jobs, worker, reports ----------------------------------------------------------------

jobs_app = typer.Typer(help="The periodic jobs, run now.", no_args_is_help=True)
report_app = typer.Typer(
    help="Operators' reports: 0 findings is the healthy answer (exit 0; 1 with findings).",
    no_args_is_help=True,
)
app.add_typer(jobs_app, name="jobs")
app.add_typer(report_app, name="report")
JsonOption = typer.Option(False, "--json", help="One JSON document on stdout, for scripts")


def _services(settings: Settings):
    from tutorbook.flows.services import build_services, open_database

    db = open_database(settings)
    with _starting():  # every command that reads the tables (the others migrate first)
        startup.check_tables(db.engine)
    return build_services(settings, db)


def _progress(job: str):
    """Progress lines on stderr for long runs (stdout stays clean for --json)."""

    def show(stage: str, count: int) -> None:
        noun = "checkouts" if stage == "listed" else "items"
        typer.echo(f"{job}: {count} {noun} {stage}", err=True)

    return show


def _table(headers: list[str], rows: list[list]) -> str:
    """A plain text table for people."""
    cells = [[str("" if v is None else v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _echo_job(result, *, as_json: bool) -> None:
    import json

    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    rows = [[i.booking_id, i.outcome, i.kind, i.checkout_id or i.refund_id] for i in result.items]
    if rows:
        typer.echo(_table(["booking", "outcome", "finding", "checkout / refund"], rows))
    counts = ", ".join(f"{k}: {v}" for k, v in result.counts().items()) or "nothing to do"
    typer.echo(f"{result.job}{' (dry run: nothing changed)' if result.dry_run else ''}: {counts}")


def _run_job(name: str, *, dry_run: bool, **options):
    from tutorbook import jobs
    from tutorbook.clock import utc_now
    from tutorbook.payments.gateway import GatewayError

    svc = _services(_settings())
    try:
        return jobs.run(name, svc, now=utc_now(), dry_run=dry_run, progress=_progress(name), **options)
    except GatewayError as exc:
        typer.echo(f"error: Stripe could not be reached: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        svc.db.dispose()


mail_app = typer.Typer(help="Mail: the development mailbox and the outbox.", no_args_is_help=True)
app.add_typer(mail_app, name="mail")


@mail_app.command("list")
def mail_list(
    status: str = typer.Option(
        None, help="List the outbox in this status (pending, sending, sent, failed, skipped) instead of the mailbox"
    ),
    to: str = typer.Option(None, help="Only mail to this address (mailbox)"),
    limit: int = typer.Option(50, help="At most this many, newest first"),
):
    """The development mailbox (mail kept while no SMTP server is configured), or with --status
    the outbox (e.g. --status failed: what the mail server refused for good)."""
    from tutorbook.notifications import repository as outbox

    svc = _services(_settings())
    try:
        with svc.db.session_scope() as session:
            if status:
                rows = [
                    [n.id, n.kind, n.to_address, n.status, n.attempts, (n.last_error or "")[:60]]
                    for n in outbox.listing(session, status=status, limit=limit)
                ]
                headers = ["id", "kind", "to", "status", "attempts", "last error"]
            else:
                rows = [
                    [m.id, m.created_at.isoformat(timespec="seconds"), m.to_address, m.subject]
                    for m in outbox.mailbox(session, limit=limit, to=to)
                ]
                headers = ["id", "kept", "to", "subject"]
    finally:
        svc.db.dispose()
    typer.echo(_table(headers, rows) if rows else "no mail")


@mail_app.command("show")
def mail_show(mail_id: int = typer.Argument(..., help="The id from `tutorbook mail list`")):
    """One message of the development mailbox, as sent (MIME)."""
    from tutorbook.notifications import repository as outbox

    svc = _services(_settings())
    try:
        with svc.db.session_scope() as session:
            mail = outbox.kept(session, mail_id)
            raw = mail.raw if mail else None
    finally:
        svc.db.dispose()
    if raw is None:
        typer.echo(f"error: no message {mail_id}", err=True)
        raise typer.Exit(1)
    typer.echo(raw)


@jobs_app.command("run")
def jobs_run(
    name: str = typer.Argument(..., help="expire | reconcile | complete | meeting-links | purge | reminders | mail"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would change; change nothing"),
    since_hours: float = typer.Option(
        None,
        help="reconcile only: look this far back instead of TUTORBOOK_RECONCILE_LOOKBACK_HOURS (e.g. after a restore)",
    ),
    as_json: bool = JsonOption,
):
    """Run one job now (what the scheduler runs on its interval)."""
    from tutorbook import jobs

    if name not in jobs.JOBS:
        typer.echo(f"error: unknown job {name!r}; one of: {', '.join(jobs.JOBS)}", err=True)
        raise typer.Exit(2)
    options = {"since": _since(since_hours)} if name == "reconcile" and since_hours else {}
    _echo_job(_run_job(name, dry_run=dry_run, **options), as_json=as_json)


def _since(hours: float | None):
    from datetime import timedelta

    from tutorbook.clock import utc_now

    return utc_now() - timedelta(hours=hours) if hours else None


@jobs_app.command("list")
def jobs_list():
    """The jobs and their intervals."""
    from tutorbook import jobs

    settings = _settings()
    rows = [
        [n, f"{jobs.interval(settings, n):g}s", "TUTORBOOK_" + jobs.INTERVAL_SETTINGS[n].upper()] for n in jobs.JOBS
    ]
    typer.echo(_table(["job", "every", "setting"], rows))


@app.command()
def worker(
    metrics_port: int = typer.Option(0, help="Serve /metrics (Prometheus) on this port; 0: off"),
    metrics_host: str = typer.Option("127.0.0.1", help="Address for --metrics-port"),
    only: str = typer.Option(
        None, "--only", help="Run only these jobs, comma-separated (e.g. mail,reminders); default: all"
    ),
):
    """Run only the periodic jobs (no HTTP app) until SIGINT/SIGTERM; any number may run (on
    PostgreSQL each sweep still runs once per interval across all of them)."""
    import asyncio

    from tutorbook.jobs import scheduler
    from tutorbook.metrics import Metrics

    names = _job_names(only)
    settings = _settings()
    with _starting():
        startup.check_port(metrics_host, metrics_port, what="the worker's /metrics", hint="pass another --metrics-port")
    _migrate(settings)
    traced = _tracing(settings)
    svc, metrics = _services(settings), Metrics()
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


def _tracing(settings: Settings):
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


def _metrics_exporter(svc, metrics, *, host: str, port: int):
    """A tiny /metrics endpoint in a thread, for a worker that has no app to serve it."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tutorbook.api.deps import check_metrics_access
    from tutorbook.bookings import repository as bookings_repo
    from tutorbook.errors import AppError, envelope

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path != "/metrics":
                self.send_error(404)
                return
            content_type = "text/plain; version=0.0.4"
            try:  # the same rule as the app's /metrics: the metrics token or an admin's token
                check_metrics_access(svc, authorization=self.headers.get("authorization"))
                status, body = 200, metrics.render(svc.tx_sync(bookings_repo.count_by_status)).encode()
            except AppError as exc:
                status, content_type = exc.status_code, "application/json"
                body = json.dumps(envelope(None, exc.message, success=False)).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _finish_report(count: int) -> None:
    raise typer.Exit(1 if count else 0)


@report_app.command("orphaned")
def report_orphaned(
    older_than_minutes: int = typer.Option(None, help="Default: TUTORBOOK_ORPHAN_THRESHOLD_MINUTES (60)"),
    as_json: bool = JsonOption,
):
    """Pending, unpaid bookings older than the threshold (the seed's first query)."""
    import json
    from datetime import timedelta

    from tutorbook.admin import reports
    from tutorbook.admin.schemas import orphaned_out
    from tutorbook.clock import utc_now

    settings = _settings()
    minutes = older_than_minutes or settings.orphan_threshold_minutes
    svc = _services(settings)
    older_than = timedelta(minutes=minutes)
    with svc.db.session_scope() as session:
        found = reports.orphaned(session, now=utc_now(), older_than=older_than)
        rows = [orphaned_out(b) for b in found]
    svc.db.dispose()
    items = [r.model_dump(mode="json", by_alias=True) for r in rows]
    if as_json:
        report = {"thresholdMinutes": minutes, "count": len(rows), "items": items}
        typer.echo(json.dumps(report, indent=2))
    else:
        table = [[i["id"], i["statusName"], i["stripeSessionId"], i["createdAt"]] for i in items]
        if table:
            typer.echo(_table(["booking", "status", "checkout", "created"], table))
        typer.echo(f"{len(rows)} orphaned sessions (Pending, unpaid, older than {minutes} min)")
    _finish_report(len(rows))


@report_app.command("invalid-statuses")
def report_invalid_statuses(as_json: bool = JsonOption):
    """Bookings whose status is not 0-3 (the seed's second query); the schema makes it 0."""
    import json

    from tutorbook.admin import reports

    svc = _services(_settings())
    with svc.db.session_scope() as session:
        rows = reports.invalid_statuses(session)
    svc.db.dispose()
    if as_json:
        typer.echo(json.dumps({"count": len(rows), "items": rows}, indent=2, default=str))
    else:
        if rows:
            table = [[r["id"], r["status"], r["count"]] for r in rows]
            typer.echo(_table(["booking", "status", "count"], table))
        typer.echo(f"{len(rows)} bookings with a status outside 0-3")
    _finish_report(len(rows))


@report_app.command("reconcile")
def report_reconcile(
    since_hours: float = typer.Option(
        None, help="Checkouts created this many hours back (default: TUTORBOOK_RECONCILE_LOOKBACK_HOURS, 48)"
    ),
    as_json: bool = JsonOption,
):
    """Mismatches between Stripe and the database, changing nothing (`jobs run reconcile` fixes)."""
    result = _run_job("reconcile", dry_run=True, since=_since(since_hours))
    _echo_job(result, as_json=as_json)
    if not as_json:
        typer.echo(f"{len(result.mismatches)} mismatches between Stripe and the database")
    _finish_report(len(result.mismatches))


stripe_app = typer.Typer(help="Stripe, as this configuration sees it.", no_args_is_help=True)
app.add_typer(stripe_app, name="stripe")


@stripe_app.command("check")
def stripe_check(as_json: bool = JsonOption):
    """Pre-flight with the configured key (the sandbox, or a real test/live key): webhook endpoints,
    Connect, the platform's country and currencies; what to run or click for each fault (exit 1)."""
    import json

    from tutorbook.admin import stripe_check as sc
    from tutorbook.payments.gateway import GatewayError

    settings = _settings()
    svc = _services(settings)
    try:
        with svc.db.session_scope() as session:
            teachers = sc.teacher_currencies(session)
        findings = sc.check(svc.gateway, settings, teachers=teachers)
    except GatewayError as exc:
        typer.echo(f"error: Stripe could not be asked: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        svc.db.dispose()
    faults = [f for f in findings if not f.ok]
    if as_json:
        typer.echo(json.dumps({"ok": not faults, "items": [f.__dict__ for f in findings]}, indent=2))
    else:
        where = "the Stripe sandbox" if settings.uses_sandbox else f"Stripe ({settings.stripe_secret_key[:8]}…)"
        typer.echo(f"Checking {where} for {settings.public_url}")
        for f in findings:
            typer.echo(f"{'ok  ' if f.ok else 'FAIL'}  {f.item}: {f.detail}")
            for line in (f.fix.splitlines() if f.fix else []) + ([f"note: {f.note}"] if f.note else []):
                typer.echo(f"        {line}")
        typer.echo("all good" if not faults else f"{len(faults)} to fix")
    raise typer.Exit(1 if faults else 0)


if __name__ == "__main__":
    app()
