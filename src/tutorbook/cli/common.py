"""What the `tutorbook` command's groups share: the Typer apps, the settings, start-up failures as
one line, migrating, the services, tables for people."""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError

from tutorbook import startup
from tutorbook.config import ConfigurationError, Settings, get_settings
from tutorbook.startup import StartupError

if TYPE_CHECKING:  # the commands import what they use when they run (a fast `tutorbook --help`)
    from stripe_sandbox.config import SandboxConfig
    from tutorbook.flows.services import Services
    from tutorbook.jobs.result import JobResult, Progress

app = typer.Typer(help="Tutorbook: paid 1:1 tutoring with Stripe Checkout.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.")
app.add_typer(db_app, name="db")
options = {"debug": False}


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="On a start-up failure, show the traceback too")) -> None:
    """Tutorbook: paid 1:1 tutoring with Stripe Checkout."""
    options["debug"] = debug


@contextlib.contextmanager
def starting() -> Iterator[None]:
    """A start-up failure: one line on stderr (the traceback too with --debug), exit 1 or 2."""
    try:
        yield
    except StartupError as exc:
        typer.echo(f"error: {exc.line}", err=True)
        if options["debug"]:
            traceback.print_exception(exc)
        raise typer.Exit(exc.exit_code) from exc


def load_settings(**overrides: Any) -> Settings:
    with starting():
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


def migrate_or_exit(settings: Settings, revision: str = "head") -> None:
    """Check that the database answers, then migrate it (over the direct URL: DDL and Alembic's
    lock want a session of their own, not a pooler's); each failure one line."""
    with starting():
        startup.check_database(settings.direct_url)
        startup.migrate(settings.direct_url, revision, debug=options["debug"])


def sandbox_config(settings: Settings, *, webhook_url: str | None) -> SandboxConfig:
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


# -- jobs, worker, reports ----------------------------------------------------------------

jobs_app = typer.Typer(help="The periodic jobs, run now.", no_args_is_help=True)
report_app = typer.Typer(
    help="Operators' reports: 0 findings is the healthy answer (exit 0; 1 with findings).",
    no_args_is_help=True,
)
app.add_typer(jobs_app, name="jobs")
app.add_typer(report_app, name="report")
JsonOption = typer.Option(False, "--json", help="One JSON document on stdout, for scripts")


def services_for(settings: Settings) -> Services:
    from tutorbook.flows.services import build_services, open_database

    db = open_database(settings)
    with starting():  # every command that reads the tables (the others migrate first)
        startup.check_tables(db.engine)
    return build_services(settings, db)


def progress_printer(job: str) -> Progress:
    """Progress lines on stderr for long runs (stdout stays clean for --json)."""

    def show(stage: str, count: int) -> None:
        noun = "checkouts" if stage == "listed" else "items"
        typer.echo(f"{job}: {count} {noun} {stage}", err=True)

    return show


def text_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain text table for people."""
    cells = [[str("" if v is None else v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def echo_job(result: JobResult, *, as_json: bool) -> None:
    import json

    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    rows = [[i.booking_id, i.outcome, i.kind, i.checkout_id or i.refund_id] for i in result.items]
    if rows:
        typer.echo(text_table(["booking", "outcome", "finding", "checkout / refund"], rows))
    counts = ", ".join(f"{k}: {v}" for k, v in result.counts().items()) or "nothing to do"
    typer.echo(f"{result.job}{' (dry run: nothing changed)' if result.dry_run else ''}: {counts}")


def run_job(name: str, *, dry_run: bool, **options: Any) -> JobResult:
    from tutorbook import jobs
    from tutorbook.clock import utc_now
    from tutorbook.payments.gateway import GatewayError

    svc = services_for(load_settings())
    try:
        return jobs.run(name, svc, now=utc_now(), dry_run=dry_run, progress=progress_printer(name), **options)
    except GatewayError as exc:
        typer.echo(f"error: Stripe could not be reached: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        svc.db.dispose()
