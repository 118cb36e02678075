"""`tutorbook db upgrade`, `demo-data` and `create-admin`: what goes into the database by hand."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING

import typer

from tutorbook.cli.common import (
    app,
    db_app,
    load_settings,
    migrate_or_exit,
    sandbox_config,
)
from tutorbook.config import Settings

if TYPE_CHECKING:  # the commands import what they use when they run (a fast `tutorbook --help`)
    from sqlalchemy.orm import Session

    from tutorbook.flows.services import Services
    from tutorbook.identity import AuthUser


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the migrations up to REVISION (default head)."""
    migrate_or_exit(load_settings(), revision)
    typer.echo("database is at " + revision)


@app.command("demo-data")
def demo_data() -> None:
    """Add demo teachers (with weekly hours) and a demo parent with two children; safe to repeat."""
    settings = load_settings()
    migrate_or_exit(settings)
    from tutorbook import demo
    from tutorbook.db import Database
    from tutorbook.flows.services import build_services
    from tutorbook.identity import Role

    svc = build_services(settings, Database(settings.database_url))
    logins = svc.tx_sync(demo.load, hasher=svc.hasher, settings=settings)
    if settings.uses_sandbox and settings.sandbox_enabled:
        _onboard_demo_teachers(settings, svc, [email for role, email, _ in logins if role == Role.TEACHER])
    svc.db.dispose()
    typer.echo("Demo logins:")
    for role, email, password in logins:
        typer.echo(f"  {role:<8} {email:<28} {password}")


def _onboard_demo_teachers(settings: Settings, svc: Services, emails: list[str]) -> None:
    """Connect the demo teachers' payouts in the sandbox (its hosted onboarding, "Submit"), so
    their bookings are destination charges. The sandbox is started for it unless it runs."""
    import asyncio

    import httpx

    from tutorbook.flows import payouts

    sandbox = None
    try:
        httpx.get(settings.sandbox_url + "/_sandbox/clock", timeout=2)
    except httpx.HTTPError:
        from stripe_sandbox.server import start_in_thread

        sandbox = start_in_thread(
            sandbox_config(settings, webhook_url=None), host=settings.sandbox_host, port=settings.sandbox_port
        )

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
        for teacher in svc.tx_sync(_teachers, emails=emails):
            enabled = asyncio.run(connect(teacher))
            typer.echo(f"  payouts of {teacher.email}: {'enabled' if enabled else 'not enabled'}")
    except Exception as exc:  # the demo works without payouts (TUTORBOOK_REQUIRE_TEACHER_PAYOUTS=false)
        typer.echo(f"demo teachers' payouts not connected: {exc}", err=True)
    finally:
        if sandbox is not None:
            sandbox.stop()


def _teachers(session: Session, *, emails: list[str]) -> list[AuthUser]:
    """The demo teachers, as the payouts flow knows a caller."""
    import sqlalchemy as sa

    from tutorbook.accounts.models import User
    from tutorbook.identity import AuthUser, Role

    users = session.scalars(sa.select(User).where(User.email.in_(emails))).all()
    return [AuthUser(u.id, Role(u.role), u.email, u.full_name, u.time_zone) for u in users]


@app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., prompt=True),
    full_name: str = typer.Option("Administrator", "--name"),
    password: str = typer.Option(None, help="Prompted for when omitted"),
) -> None:
    """Create an Admin account (admins cannot register through the API)."""
    settings = load_settings()
    migrate_or_exit(settings)
    password = password or getpass.getpass("Password: ")
    from tutorbook.accounts import service as accounts
    from tutorbook.accounts.models import Role
    from tutorbook.clock import utc_now
    from tutorbook.db import Database
    from tutorbook.errors import AppError
    from tutorbook.flows.services import build_services

    svc = build_services(settings, Database(settings.database_url))
    try:
        svc.tx_sync(
            accounts.create_user,
            hasher=svc.hasher,
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
        svc.db.dispose()
    typer.echo(f"admin {email.lower()} created")
