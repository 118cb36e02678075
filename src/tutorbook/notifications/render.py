"""Each kind of email as plain text and HTML (Jinja2 templates in notifications/templates), the
times in the recipient's own zone, an invite attached where the kind has one. No tracking.

People's names and subjects are typed by users and end up in the Subject header. The `email`
package decodes RFC 2047 encoded words in a header value it is given (`=?utf-8?q?=0D=0A?=` is a
line break) and, before Python 3.11.10 / 3.12.5, writes the decoded line breaks out as they are:
a name could add a `Bcc:` header or replace the whole body. So every header value made from user
text goes through `header_text` (no line breaks or control characters, no encoded-word opener
`=?`), and every message is written out and read back before it is used (`message`), so a message
whose headers or parts are not exactly the ones it was given is never sent: it raises
`UnsafeMessage`, and the outbox marks that one message failed."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from tutorbook import currencies, localtime
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
    "series_payment_due.parent": "Pay for {subject} with {teacher_name}, {when}",
    "reminder.parent": "Reminder: {subject} with {teacher_name} {soon}",
    "reminder.teacher": "Reminder: {subject} with {student_name} {soon}",
    "calendar_conflict.teacher": "Your calendar is busy during a paid session: {subject} with {student_name}, {when}",
    "calendar_stale.teacher": "Your calendar {calendar} can no longer be read",
    "credits_expiring.parent": "{count} lesson credit(s) with {teacher} expire in {days} days",
    "password_reset": "Reset your {product} password",
    "password_changed": "Your {product} password was changed",
}
money = currencies.money  # "USD 45.00", as the pages show it (one table: tutorbook.currencies)


def when(start: datetime, end: datetime, zone: str, locale: str | None = None) -> str:
    """The session's time on the recipient's wall clock, in their language, the zone named
    (the pages' format: tutorbook.localtime): "Wed, Dec 2, 2026, 3:00 PM–4:00 PM, Eastern Time – New York (EST)"."""
    return localtime.when_in_zone(start, end, zone, locale or localtime.DEFAULT_LOCALE)


def moment(value: datetime, zone: str, locale: str | None = None) -> str:
    """One instant with its zone, in the recipient's language: "Wed, Dec 2, 2026, 3:00 PM EST"."""
    return localtime.moment(value, zone, locale or localtime.DEFAULT_LOCALE)


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


class UnsafeMessage(ValueError):
    """A message that, written out, would not be the message that was built."""


# Characters that end a line somewhere (str.splitlines: CR, LF, VT, FF, FS, GS, RS, NEL, U+2028,
# U+2029), other control characters and lone surrogates: a space in a header.
_NOT_IN_HEADER = frozenset(("Cc", "Cs", "Zl", "Zp"))
_ENCODED_WORD = re.compile(r"=\?")


def header_text(value: str) -> str:
    """User text as one header line that no mail program decodes into anything else: line breaks
    and control characters become spaces, runs of white space one space, and the opener of an
    RFC 2047 encoded word `=?` is written `= ?` (so `=?utf-8?q?=0D=0A?=` stays text)."""
    spaced = "".join(" " if unicodedata.category(ch) in _NOT_IN_HEADER else ch for ch in value)
    return _ENCODED_WORD.sub("= ?", " ".join(spaced.split()))


def render(kind: str, *, to: str, context: dict[str, Any]) -> Mail:
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
    msg["Subject"] = header_text(mail.subject)
    msg["Date"] = format_datetime(as_utc(now))
    # Stable per notification: a message sent again after a crash has the same Message-ID.
    host = urlsplit(public_url).hostname or "tutorbook.invalid"
    msg["Message-ID"] = f"<{message_key}@{host}>" if message_key else make_msgid(domain=host)
    msg["Auto-Submitted"] = "auto-generated"
    for key, value in mail.headers.items():
        msg[key] = header_text(value)
    msg.set_content(mail.text)
    msg.add_alternative(mail.html, subtype="html")
    if mail.invite is not None:
        msg.add_alternative(
            mail.invite.decode("utf-8"),
            subtype="calendar",
            params={"method": mail.invite_method or "REQUEST"},
        )
    check(msg)
    return msg


def check(msg: EmailMessage) -> None:
    """Raise UnsafeMessage unless `msg`, written out as it will be sent and read back, has the
    same headers (names and values) and the same parts as the message built: whatever a header
    value held, it stayed inside its header."""
    raw = msg.as_bytes()  # first: writing a multipart message out gives it its boundary
    built, read = _outline(msg), _outline(message_from_bytes(raw, policy=email_policy.default))
    if read != built:
        raise UnsafeMessage(f"the message would be written out as another one: {read!r} instead of {built!r}")


def _outline(msg: EmailMessage) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each part's content type with its headers' names and values, in order. The values without
    white space: the email package drops the space between two encoded words when it reads them."""
    return [
        (part.get_content_type(), [(name.lower(), "".join(str(value).split())) for name, value in part.items()])
        for part in msg.walk()
    ]
