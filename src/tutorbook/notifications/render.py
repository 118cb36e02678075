"""Each kind of email as plain text and HTML (Jinja2 templates in notifications/templates), the
times in the recipient's own zone, an invite attached where the kind has one. No tracking."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from tutorbook.clock import as_utc

HERE = Path(__file__).parent
_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# kind -> subject (formatted with the context)
SUBJECTS = {
    "confirmed.parent": "Booking confirmed: {subject} with {teacher_name}, {when}",
    "confirmed.teacher": "New paid booking: {subject} with {student_name}, {when}",
    "cancelled.parent": "Booking cancelled: {subject} with {teacher_name}, {when}",
    "cancelled.teacher": "Booking cancelled: {subject} with {student_name}, {when}",
    "rescheduled.parent": "New time: {subject} with {teacher_name}, {when}",
    "rescheduled.teacher": "New time: {subject} with {student_name}, {when}",
    "refund_issued.parent": "Refund issued: {refund}",
    "late_payment_refunded.parent": "Your payment was refunded: {subject} with {teacher_name}",
    "payment_pending.parent": "Your booking is held - complete the payment",
    "reminder.parent": "Reminder: {subject} with {teacher_name} {soon}",
    "reminder.teacher": "Reminder: {subject} with {student_name} {soon}",
    "calendar_conflict.teacher": "Your calendar is busy during a paid session: {subject} with {student_name}, {when}",
    "calendar_stale.teacher": "Your calendar {calendar} can no longer be read",
    "password_reset": "Reset your {product} password",
}
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())


def money(amount: int, currency: str) -> str:
    """Minor units with the currency: (4500, "usd") -> "USD 45.00" (as the pages show it)."""
    code = currency.lower()
    decimals = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    return f"{code.upper()} {amount / 10**decimals:,.{decimals}f}"


def when(start: datetime, end: datetime, zone: str) -> str:
    """ "Tue 2 Dec 2026, 15:00-16:00 CET (Europe/Berlin)" on the recipient's wall clock."""
    tz = ZoneInfo(zone)
    s, e = as_utc(start).astimezone(tz), as_utc(end).astimezone(tz)
    end_text = f"{e:%H:%M}" if e.date() == s.date() else f"{e:%a} {e.day} {e:%b %Y} {e:%H:%M}"
    return f"{s:%a} {s.day} {s:%b %Y}, {s:%H:%M}-{end_text} {s:%Z} ({zone})"


@dataclass
class Mail:
    """One rendered email: who, what, and the invite (bytes of text/calendar) if any."""

    to: str
    subject: str
    text: str
    html: str
    invite: bytes | None = None
    invite_method: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def render(kind: str, *, to: str, context: dict) -> Mail:
    """The email of `kind` for `to`: subject, text and HTML from the templates."""
    name = kind.replace(".", "_")
    subject = SUBJECTS[kind].format(**context)
    text = _env.get_template(f"{name}.txt").render(mail_subject=subject, **context)
    html = _env.get_template(f"{name}.html").render(mail_subject=subject, **context)
    return Mail(to=to, subject=subject, text=text, html=html)


def message(mail: Mail, *, sender: str, public_url: str, message_key: str, now: datetime) -> EmailMessage:
    """The MIME message: text/plain, text/html and (with an invite) text/calendar; method=...,
    as alternatives, which is how Gmail, Outlook and Apple Mail recognise an invitation."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Date"] = format_datetime(as_utc(now))
    # Stable per notification: a message sent again after a crash has the same Message-ID.
    host = urlsplit(public_url).hostname or "tutorbook.invalid"
    msg["Message-ID"] = f"<{message_key}@{host}>" if message_key else make_msgid(domain=host)
    msg["Auto-Submitted"] = "auto-generated"
    for key, value in mail.headers.items():
        msg[key] = value
    msg.set_content(mail.text)
    msg.add_alternative(mail.html, subtype="html")
    if mail.invite is not None:
        msg.add_alternative(
            mail.invite.decode("utf-8"),
            subtype="calendar",
            params={"method": mail.invite_method or "REQUEST"},
        )
    return msg
