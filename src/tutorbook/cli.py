"""The `tutorbook` command: serve, worker, db, demo-data, create-admin, stripe-sandbox, reports, jobs."""

from __future__ import annotations

import getpass
import os

import typer

from tutorbook.config import ConfigurationError, Settings, get_settings

app = typer.Typer(help="Tutorbook: paid 1:1 tutoring with Stripe Checkout.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.")
app.add_typer(db_app, name="db")


def _settings(**overrides) -> Settings:
    try:
        settings = Settings(**overrides).resolved() if overrides else get_settings()
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    from tutorbook.logs import configure_logging

    configure_logging(json_lines=settings.log_json, level=settings.log_level)
    return settings


def _migrate(settings: Settings) -> None:
    from tutorbook.migrate import upgrade

    upgrade(settings.database_url)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head"):
    """Apply the migrations up to REVISION (default head)."""
    settings = _settings()
    from tutorbook.migrate import upgrade

    upgrade(settings.database_url, revision)
    typer.echo("database is at " + revision)


def _sandbox_config(settings: Settings, *, webhook_url: str | None):
    from tutorbook.payments.sandbox.config import SandboxConfig

    return SandboxConfig(
        db_path=str(settings.var_dir / "stripe-sandbox.db"),
        public_url=settings.sandbox_url,
        webhook_url=webhook_url,
        webhook_secret=settings.stripe_webhook_secret,
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
    overrides = {}
    if "TUTORBOOK_PUBLIC_URL" not in os.environ:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        overrides["public_url"] = f"http://{shown}:{port}"
    if not jobs:
        overrides["jobs_enabled"] = False
    settings = _settings(**overrides)
    _migrate(settings)
    sandbox = None
    if settings.uses_sandbox and settings.sandbox_enabled:
        from tutorbook.payments.sandbox.server import start_in_thread

        webhook = settings.public_url.rstrip("/") + "/api/StripeWebhook/webhook"
        sandbox = start_in_thread(
            _sandbox_config(settings, webhook_url=webhook), host=settings.sandbox_host, port=settings.sandbox_port
        )
        typer.echo(f"Stripe sandbox on {sandbox.base_url} (test card 4242 4242 4242 4242)")
    for key, value in overrides.items():
        os.environ[f"TUTORBOOK_{key.upper()}"] = str(value)
    import uvicorn

    typer.echo(f"Tutorbook on {settings.public_url}  (API docs: {settings.public_url}/docs)")
    try:
        uvicorn.run("tutorbook.asgi:app", host=host, port=port, workers=workers, log_config=None)
    finally:
        if sandbox is not None:
            sandbox.stop()


@app.command("stripe-sandbox")
def stripe_sandbox(
    host: str = typer.Option(None, help="Default: TUTORBOOK_SANDBOX_HOST"),
    port: int = typer.Option(None, help="Default: TUTORBOOK_SANDBOX_PORT"),
    webhook_url: str = typer.Option(None, help="Where to deliver events (default: the app's webhook)"),
):
    """Run only the Stripe sandbox."""
    settings = _settings()
    from tutorbook.payments.sandbox.server import run

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
    db.dispose()
    typer.echo("Demo logins:")
    for role, email, password in logins:
        typer.echo(f"  {role:<8} {email:<28} {password}")


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
                session, hasher=password_hasher(settings), settings=settings, email=email,
                password=password, full_name=full_name, role=Role.ADMIN, now=utc_now(),
            )
    except AppError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    typer.echo(f"admin {email.lower()} created")


if __name__ == "__main__":
    app()
