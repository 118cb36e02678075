"""`tutorbook jobs`, `mail`, `report` and `stripe`: operators' commands that run and exit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from tutorbook.cli.common import (
    JsonOption,
    app,
    echo_job,
    jobs_app,
    load_settings,
    report_app,
    run_job,
    services_for,
    text_table,
)

mail_app = typer.Typer(help="Mail: the development mailbox and the outbox.", no_args_is_help=True)
app.add_typer(mail_app, name="mail")

if TYPE_CHECKING:  # the commands import what they use when they run (a fast `tutorbook --help`)
    from datetime import datetime, timedelta

    from sqlalchemy.orm import Session

    from tutorbook.admin.schemas import OrphanedSession


@mail_app.command("list")
def mail_list(
    status: str = typer.Option(
        None, help="List the outbox in this status (pending, sending, sent, failed, skipped) instead of the mailbox"
    ),
    to: str = typer.Option(None, help="Only mail to this address (mailbox)"),
    limit: int = typer.Option(50, help="At most this many, newest first"),
) -> None:
    """The development mailbox (mail kept while no SMTP server is configured), or with --status
    the outbox (e.g. --status failed: what the mail server refused for good)."""
    svc = services_for(load_settings())
    try:
        headers, rows = svc.tx_sync(_mail_rows, status=status, to=to, limit=limit)
    finally:
        svc.db.dispose()
    typer.echo(text_table(headers, rows) if rows else "no mail")


def _mail_rows(
    session: Session, *, status: str | None, to: str | None, limit: int
) -> tuple[list[str], list[list[Any]]]:
    """The outbox in `status`, or (None) the development mailbox: headers and rows."""
    from tutorbook.notifications import repository as outbox

    if status:
        rows = [
            [n.id, n.kind, n.to_address, n.status, n.attempts, (n.last_error or "")[:60]]
            for n in outbox.listing(session, status=status, limit=limit)
        ]
        return ["id", "kind", "to", "status", "attempts", "last error"], rows
    rows = [
        [m.id, m.created_at.isoformat(timespec="seconds"), m.to_address, m.subject]
        for m in outbox.mailbox(session, limit=limit, to=to)
    ]
    return ["id", "kept", "to", "subject"], rows


def _raw_mail(session: Session, *, mail_id: int) -> str | None:
    from tutorbook.notifications import repository as outbox

    mail = outbox.kept(session, mail_id)
    return mail.raw if mail else None


@mail_app.command("show")
def mail_show(mail_id: int = typer.Argument(..., help="The id from `tutorbook mail list`")) -> None:
    """One message of the development mailbox, as sent (MIME)."""
    svc = services_for(load_settings())
    try:
        raw = svc.tx_sync(_raw_mail, mail_id=mail_id)
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
) -> None:
    """Run one job now (what the scheduler runs on its interval)."""
    from tutorbook import jobs

    if name not in jobs.JOBS:
        typer.echo(f"error: unknown job {name!r}; one of: {', '.join(jobs.JOBS)}", err=True)
        raise typer.Exit(2)
    options = {"since": _since(since_hours)} if name == "reconcile" and since_hours else {}
    echo_job(run_job(name, dry_run=dry_run, **options), as_json=as_json)


def _since(hours: float | None) -> datetime | None:
    from datetime import timedelta

    from tutorbook.clock import utc_now

    return utc_now() - timedelta(hours=hours) if hours else None


@jobs_app.command("list")
def jobs_list() -> None:
    """The jobs and their intervals."""
    from tutorbook import jobs

    settings = load_settings()
    rows = [
        [n, f"{jobs.interval(settings, n):g}s", "TUTORBOOK_" + jobs.JOBS[n].interval_setting.upper()] for n in jobs.JOBS
    ]
    typer.echo(text_table(["job", "every", "setting"], rows))


def _finish_report(count: int) -> None:
    raise typer.Exit(1 if count else 0)


def _orphaned_rows(session: Session, *, now: datetime, older_than: timedelta) -> list[OrphanedSession]:
    from tutorbook.admin import reports
    from tutorbook.admin.schemas import orphaned_out

    return [orphaned_out(b) for b in reports.orphaned(session, now=now, older_than=older_than)]


@report_app.command("orphaned")
def report_orphaned(
    older_than_minutes: int = typer.Option(None, help="Default: TUTORBOOK_ORPHAN_THRESHOLD_MINUTES (60)"),
    as_json: bool = JsonOption,
) -> None:
    """Pending, unpaid bookings older than the threshold (the seed's first query)."""
    import json
    from datetime import timedelta

    from tutorbook.clock import utc_now

    settings = load_settings()
    minutes = older_than_minutes or settings.orphan_threshold_minutes
    svc = services_for(settings)
    older_than = timedelta(minutes=minutes)
    rows = svc.tx_sync(_orphaned_rows, now=utc_now(), older_than=older_than)
    svc.db.dispose()
    items = [r.model_dump(mode="json", by_alias=True) for r in rows]
    if as_json:
        report = {"thresholdMinutes": minutes, "count": len(rows), "items": items}
        typer.echo(json.dumps(report, indent=2))
    else:
        table = [[i["id"], i["statusName"], i["stripeSessionId"], i["createdAt"]] for i in items]
        if table:
            typer.echo(text_table(["booking", "status", "checkout", "created"], table))
        typer.echo(f"{len(rows)} orphaned sessions (Pending, unpaid, older than {minutes} min)")
    _finish_report(len(rows))


@report_app.command("invalid-statuses")
def report_invalid_statuses(as_json: bool = JsonOption) -> None:
    """Bookings whose status is not 0-3 (the seed's second query); the schema makes it 0."""
    import json

    from tutorbook.admin import reports

    svc = services_for(load_settings())
    rows = svc.tx_sync(reports.invalid_statuses)
    svc.db.dispose()
    if as_json:
        typer.echo(json.dumps({"count": len(rows), "items": rows}, indent=2, default=str))
    else:
        if rows:
            table = [[r["id"], r["status"], r["count"]] for r in rows]
            typer.echo(text_table(["booking", "status", "count"], table))
        typer.echo(f"{len(rows)} bookings with a status outside 0-3")
    _finish_report(len(rows))


@report_app.command("reconcile")
def report_reconcile(
    since_hours: float = typer.Option(
        None, help="Checkouts created this many hours back (default: TUTORBOOK_RECONCILE_LOOKBACK_HOURS, 48)"
    ),
    as_json: bool = JsonOption,
) -> None:
    """Mismatches between Stripe and the database, changing nothing (`jobs run reconcile` fixes)."""
    result = run_job("reconcile", dry_run=True, since=_since(since_hours))
    echo_job(result, as_json=as_json)
    if not as_json:
        typer.echo(f"{len(result.mismatches)} mismatches between Stripe and the database")
    _finish_report(len(result.mismatches))


stripe_app = typer.Typer(help="Stripe, as this configuration sees it.", no_args_is_help=True)
app.add_typer(stripe_app, name="stripe")


@stripe_app.command("check")
def stripe_check(as_json: bool = JsonOption) -> None:
    """Pre-flight with the configured key (the sandbox, or a real test/live key): webhook endpoints,
    Connect, the platform's country and currencies; what to run or click for each fault (exit 1)."""
    import json

    from tutorbook.admin import stripe_check as sc
    from tutorbook.payments.gateway import GatewayError

    settings = load_settings()
    svc = services_for(settings)
    try:
        teachers = svc.tx_sync(sc.teacher_currencies)
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
