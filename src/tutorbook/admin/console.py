"""What the operator console shows: today at a glance, one booking in full, revenue by month,
the last reconciliation's findings explained, CSV. Read-only queries (one transaction each);
the console's actions are the bookings use cases' (`cancelling`, `lookup`) and the flows'."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import QueryableAttribute, Session

from tutorbook import jobs
from tutorbook.accounts.models import Student, User
from tutorbook.bookings import refunds
from tutorbook.bookings import repository as repo
from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.models import Booking as PS
from tutorbook.bookings.models import MeetingLink, Payment, Refund
from tutorbook.config import Settings
from tutorbook.jobs import runs
from tutorbook.jobs.models import JobRunRecord
from tutorbook.meetings import links
from tutorbook.notifications import repository as outbox
from tutorbook.notifications.models import Notification

# Reconcile's findings: what each means, and what the app does or offers about it.
FINDINGS = {
    "paid_not_confirmed": (
        "Stripe took the payment but the booking was not confirmed (a lost webhook, or a payment after the "
        "checkout was cancelled).",
        "Reconcile confirms it, or refunds it in full if the time is no longer free. Reconcile now repairs it.",
    ),
    "pending_but_expired": (
        "The checkout expired at Stripe while the booking was still Pending.",
        "Reconcile cancels the booking (nothing was paid). Reconcile now repairs it.",
    ),
    "paid_without_booking": (
        "Stripe holds a paid checkout of Tutorbook's that no booking matches.",
        "No booking to record a refund on: refund the payment in the Stripe Dashboard.",
    ),
    "unpaid_at_stripe": (
        "The booking counts as paid, but Stripe says its checkout is unpaid.",
        "Open the booking; if the payment is really missing, cancel it with no refund.",
    ),
    "refund_pending": (
        "A refund Stripe has not accepted yet (Stripe could not be reached).",
        "Reconcile sends it again with the same idempotency key; Reconcile now retries it.",
    ),
    "refund_failed": (
        "Stripe refused a refund.",
        "Refund by hand in the Stripe Dashboard; the booking keeps the failed refund on record.",
    ),
}


@dataclass
class Glance:
    today: dict[str, int]
    next_week: dict[str, int]
    payments: dict[str, tuple[int, int]]  # currency -> (count, gross)
    refunds: dict[str, tuple[int, int]]  # currency -> (count, amount)
    reconcile: JobRunRecord | None
    open_findings: int
    link_failures: int
    mail: outbox.Trouble
    undeliverable: int
    jobs: list[runs.JobHealth] = field(default_factory=list)


MAIL_TROUBLE_DAYS = 7


def day_bounds(now: datetime, zone: str) -> tuple[datetime, datetime]:
    """The start of today in `zone` and of tomorrow, as aware datetimes."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    start = datetime.combine(today, time(), tz)
    return start, datetime.combine(today + timedelta(days=1), time(), tz)


def _by_status(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    stmt = sa.select(PS.status, sa.func.count()).where(PS.starts_at >= start, PS.starts_at < end).group_by(PS.status)
    counts = dict(session.execute(stmt).tuples().all())
    return {s.label: int(counts.get(s, 0)) for s in Status}


def glance(session: Session, *, now: datetime, zone: str, settings: Settings) -> Glance:
    """Today (the operator's day) at a glance."""
    start, end = day_bounds(now, zone)
    paid = session.execute(
        sa.select(PS.currency, sa.func.count(), sa.func.coalesce(sa.func.sum(PS.price_amount), 0))
        .where(PS.paid_at >= start, PS.paid_at < end)
        .group_by(PS.currency)
    ).all()
    refunded = session.execute(
        sa.select(Refund.currency, sa.func.count(), sa.func.coalesce(sa.func.sum(Refund.amount), 0))
        .where(Refund.created_at >= start, Refund.created_at < end, Refund.status.not_in(refunds.NOT_REFUNDED))
        .group_by(Refund.currency)
    ).all()
    last = runs.last_runs(session, list(jobs.JOBS))
    reconcile = last.get("reconcile")
    link_failures = session.scalar(
        links.with_link(sa.select(sa.func.count()).select_from(PS)).where(
            links.needs_link(), MeetingLink.error.is_not(None)
        )
    )
    return Glance(
        today=_by_status(session, start, end),
        next_week=_by_status(session, end, end + timedelta(days=7)),
        payments={c: (int(n), int(s)) for c, n, s in paid},
        refunds={c: (int(n), int(s)) for c, n, s in refunded},
        reconcile=reconcile,
        open_findings=len(open_findings(reconcile)),
        link_failures=int(link_failures or 0),
        mail=outbox.trouble(session, since=now - timedelta(days=MAIL_TROUBLE_DAYS)),
        undeliverable=int(
            session.scalar(sa.select(sa.func.count()).select_from(User).where(User.mail_undeliverable_at.is_not(None)))
            or 0
        ),
        jobs=[runs.health(name, last[name], interval_s=jobs.interval(settings, name), now=now) for name in jobs.JOBS],
    )


def open_findings(run: JobRunRecord | None) -> list[dict[str, Any]]:
    """The findings of a reconcile run that were left for a person."""
    if run is None:
        return []
    return [f for f in run.findings or [] if f.get("outcome") in jobs.result.UNSETTLED]


def explain(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each finding with what it means and the fix the app offers."""
    out = []
    for f in findings:
        meaning, fix = FINDINGS.get(f.get("kind") or "", ("A disagreement between Stripe and the database.", ""))
        out.append({**f, "meaning": meaning, "fix": fix})
    return out


def last_reconcile(session: Session) -> JobRunRecord | None:
    return runs.last_runs(session, ["reconcile"])["reconcile"]


# -- one booking ------------------------------------------------------------------------


@dataclass
class BookingView:
    booking: PS
    parent: User | None
    teacher: User | None
    student: Student | None
    history: list[dict[str, Any]]
    refunds: list[Refund]
    emails: list[Notification]
    kept: dict[uuid.UUID, int]  # notification id -> the development mailbox's message id


def actor_names(session: Session, actors: set[str]) -> dict[str, str]:
    """ "user:<id>" -> "Name <email>"; jobs, the webhook and the system keep their names."""
    ids = {}
    for actor in actors:
        if actor.startswith("user:"):
            try:
                ids[actor] = uuid.UUID(actor[5:])
            except ValueError:
                continue
    users = {u.id: u for u in session.scalars(sa.select(User).where(User.id.in_(list(ids.values()))))} if ids else {}
    names = {a: a for a in actors}
    for actor, uid in ids.items():
        if uid in users:
            u = users[uid]
            names[actor] = f"{u.full_name} <{u.email}> ({u.role.lower()})"
    return names


def booking_view(session: Session, *, booking_id: uuid.UUID) -> BookingView | None:
    booking = repo.get(session, booking_id)
    if booking is None:
        return None
    history = repo.history(session, booking_id)
    actions = repo.actions(session, booking_id)
    names = actor_names(session, {h.actor for h in history} | {a.actor for a in actions})
    timeline = [
        {
            "at": h.created_at,
            "actor": names.get(h.actor, h.actor),
            "what": "status",
            "from": None if h.from_status is None else Status(h.from_status).label,
            "to": Status(h.to_status).label,
            "reason": h.reason,
            "note": h.note,
            # A reschedule: the start before and after (the length is the booking's).
            "moved_from": h.moved_from,
            "moved_to": h.moved_to,
            "order": (h.created_at, 0, h.id),
        }
        for h in history
    ] + [
        {
            "at": a.created_at,
            "actor": names.get(a.actor, a.actor),
            "what": a.action,
            "from": None,
            "to": None,
            "reason": a.detail,
            "note": a.note,
            "order": (a.created_at, 1, a.id),
        }
        for a in actions
    ]
    timeline.sort(key=lambda e: cast(tuple[datetime, int, int], e["order"]))
    emails = outbox.for_booking(session, booking_id)
    return BookingView(
        booking=booking,
        parent=session.get(User, booking.parent_id),
        teacher=session.get(User, booking.teacher_id),
        student=session.get(Student, booking.student_id),
        history=timeline,
        refunds=refunds.for_booking(session, booking_id=booking_id),
        emails=emails,
        kept=outbox.kept_ids(session, [n.id for n in emails]),
    )


# -- revenue ----------------------------------------------------------------------------


def _month(session: Session, column: QueryableAttribute[datetime | None]) -> sa.ColumnElement[str]:
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM")
    return sa.func.strftime("%Y-%m", column)


def revenue_by_month(session: Session, *, months: int = 24, now: datetime) -> list[dict[str, Any]]:
    """Per month (UTC) and currency: payments taken (gross), refunds Stripe accepted, net; and of
    the month's payments that were destination charges (Stripe Connect), the platform's fees and
    what went to the teachers, as Stripe last reported them (refunds since included), with how
    many have no split recorded yet (`unsettled`: counted in neither until reconcile reads it).
    A payment for a teacher without payouts stays with the platform: in gross and net only."""
    since = (now - timedelta(days=31 * months)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month = _month(session, PS.paid_at)
    connect = Payment.payout_destination.is_not(None)
    settled = sa.and_(connect, Payment.stripe_transfer_id.is_not(None))
    # No application fee recorded at Stripe: none was taken (bookings.earnings.earning).
    taken = sa.and_(settled, Payment.stripe_application_fee_id.is_not(None))
    fee = sa.case((taken, sa.func.coalesce(Payment.platform_fee_amount, 0) - Payment.fee_refunded_amount), else_=0)
    # Stripe transfers the whole amount and takes the fee back from the teacher's account.
    teachers = sa.case((settled, Payment.transfer_amount - Payment.transfer_reversed_amount), else_=0) - fee
    unsettled = sa.case((sa.and_(connect, Payment.stripe_transfer_id.is_(None)), 1), else_=0)
    gross = session.execute(
        sa.select(
            month,
            PS.currency,
            sa.func.count(),
            sa.func.sum(PS.price_amount),
            sa.func.sum(fee),
            sa.func.sum(teachers),
            sa.func.sum(unsettled),
        )
        .outerjoin(Payment, sa.and_(Payment.booking_id == PS.id, Payment.state != "refused"))
        .where(PS.paid_at >= since)
        .group_by(month, PS.currency)
    ).all()
    rmonth = _month(session, Refund.created_at)
    back = session.execute(
        sa.select(rmonth, Refund.currency, sa.func.sum(Refund.amount))
        .where(Refund.created_at >= since, Refund.status.not_in(refunds.NOT_REFUNDED))
        .group_by(rmonth, Refund.currency)
    ).all()
    zero = {"payments": 0, "gross": 0, "refunds": 0, "platform_fees": 0, "to_teachers": 0, "unsettled": 0}
    table: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: dict(zero))
    for m, currency, n, amount, fees, paid_out, open_ in gross:
        table[(m, currency)].update(
            payments=int(n),
            gross=int(amount or 0),
            platform_fees=int(fees or 0),
            to_teachers=int(paid_out or 0),
            unsettled=int(open_ or 0),
        )
    for m, currency, amount in back:
        table[(m, currency)]["refunds"] = int(amount or 0)
    return [
        {"month": m, "currency": c, **v, "net": v["gross"] - v["refunds"]}
        for (m, c), v in sorted(table.items(), reverse=True)
    ]


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Rows as CSV with a header line; cells that a spreadsheet would run as a formula are quoted
    with a leading apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
